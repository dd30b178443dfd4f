from __future__ import annotations

from collapsetune.escape import markdown, markdown_code, terminal


def test_terminal_shows_every_control_and_bidi_character_as_an_escape():
    text = "a\x1b[2J\x07\r\n\x9b\x7f\u202e\u2066b é 数据"
    assert terminal(text) == "a\\x1b[2J\\x07\\x0d\\x0a\\x9b\\x7f\\u202e\\u2066b é 数据"
    assert terminal(terminal(text)) == terminal(text)  # nothing left to escape


def test_markdown_leaves_no_html_link_image_code_span_or_cell_of_the_users_making():
    assert markdown("![x](http://e/p.png) [a]: http://e") == "!\\[x\\](http://e/p.png) \\[a\\]: http://e"
    assert markdown("<img src=x onerror=alert(1)> &#106;") == "&lt;img src=x onerror=alert(1)&gt; &amp;#106;"
    assert markdown("a|b`c\\") == "a\\|b\\`c\\\\"
    assert markdown("one\ntwo") == "one\\\\x0atwo"
    assert markdown_code("lr") == "`lr`" and markdown_code("a`b") == "a\\`b" and markdown_code("a|b") == "a\\|b"
    assert markdown_code("<b>") == "`<b>`"  # a code span is literal text
