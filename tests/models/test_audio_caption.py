from __future__ import annotations

import itertools

import pytest
import torch

from collapsetune.models.audio_caption import (
    BOS,
    AudioCaptioner,
    AudioCaptionerConfig,
    Encoder,
    sampling_prob,
    spec_augment,
)


def test_encoder_keeps_time_axis_when_asked():
    mel = torch.randn(2, 64, 126)  # (B, M, T)
    kept = Encoder(AudioCaptionerConfig(vocab_size=10, pooling="time_preserving"))(mel)
    pooled = Encoder(AudioCaptionerConfig(vocab_size=10, pooling="max"))(mel)
    assert kept.shape == (2, 126 // 4, 64)  # time halves twice, never pooled away
    assert pooled.shape == (2, 1, 64)


def test_encoder_time_axis_follows_the_audio():
    enc = Encoder(AudioCaptionerConfig(vocab_size=10, pooling="time_preserving", dropout=0.0)).eval()
    mel = torch.zeros(1, 64, 80)
    mel[:, :, 60:] = 5.0  # a sound only in the last quarter
    with torch.no_grad():
        frames = enc(mel)[0]  # (T', C)
    change = (frames - frames[6]).abs().sum(-1)  # frames 0-1 differ: the convs' zero padding
    assert change[2:12].max() < 1e-4 < change[-4:].min()


@pytest.mark.parametrize("pooling,injection,attention", list(itertools.product(
    ("max", "time_preserving"), ("init", "every_step"), ("none", "additive"))))
def test_every_option_trains(pooling, injection, attention):
    torch.manual_seed(0)
    m = AudioCaptioner(AudioCaptionerConfig(vocab_size=12, pooling=pooling, audio_injection=injection,
                                            attention=attention, channels=(4, 8), hidden=16, embed_dim=8))
    logits = m(torch.randn(3, 64, 32), torch.randint(3, 12, (3, 5)), ss_prob=0.5)
    assert logits.shape == (3, 5, 12) and torch.isfinite(logits).all()
    logits.logsumexp(-1).sum().backward()
    unused = [n for n, p in m.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert unused == []


def test_init_only_decoder_sees_audio_only_through_h0():
    m = AudioCaptioner(AudioCaptionerConfig(vocab_size=12, audio_injection="init")).eval()
    every = AudioCaptioner(AudioCaptionerConfig(vocab_size=12, audio_injection="every_step"))
    assert m.gru.input_size == 64 and every.gru.input_size == 64 + 64


def test_step_matches_teacher_forced_forward():
    torch.manual_seed(1)
    m = AudioCaptioner(AudioCaptionerConfig(vocab_size=12, pooling="time_preserving",
                                            attention="additive")).eval()
    mel, inputs = torch.randn(2, 64, 40), torch.randint(3, 12, (2, 4))
    full = m(mel, inputs)
    state = m.init_state(mel)
    for t in range(4):
        logits, state = m.step(inputs[:, t], state)
        torch.testing.assert_close(logits, full[:, t])


def test_forward_repeats_encodes_each_clip_once_for_its_references():
    m = AudioCaptioner(AudioCaptionerConfig(vocab_size=12)).eval()
    mel, inputs = torch.randn(2, 64, 40), torch.randint(3, 12, (6, 4))
    torch.testing.assert_close(m(mel, inputs, repeats=3), m(mel.repeat_interleave(3, 0), inputs))


def test_full_scheduled_sampling_ignores_the_given_words():
    m = AudioCaptioner(AudioCaptionerConfig(vocab_size=12)).eval()
    mel = torch.randn(2, 64, 40)
    a = torch.randint(3, 12, (2, 5))
    b = a.clone()
    b[:, 1:] = torch.randint(3, 12, (2, 4))
    a[:, 0] = b[:, 0] = BOS
    torch.testing.assert_close(m(mel, a, ss_prob=1.0), m(mel, b, ss_prob=1.0))


def test_sampling_prob_schedules():
    for schedule in ("linear", "exponential", "inverse_sigmoid"):
        values = [sampling_prob(schedule, p / 10, 1.0) for p in range(11)]
        assert values == sorted(values) and values[0] < 0.01 and values[-1] >= 0.99
        assert sampling_prob(schedule, 1.0, 0.3) == 0.3  # capped at the maximum
    assert sampling_prob("linear", 0.25, 1.0) == pytest.approx(0.25)
    assert sampling_prob("exponential", 0.5, 1.0) == pytest.approx(0.9)
    assert sampling_prob("inverse_sigmoid", 0.5, 1.0) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="ss_schedule"):
        sampling_prob("cosine", 0.5, 1.0)


def test_spec_augment_masks_bands_with_the_clip_mean():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 64, 50)
    out = spec_augment(x, freq_width=10, time_width=10, n_masks=2, generator=g)
    assert out.shape == x.shape
    changed = out != x
    assert changed.any()
    mean = x.mean(dim=(1, 2))
    for b in range(4):
        assert torch.allclose(out[b][changed[b]], mean[b].expand(int(changed[b].sum())))
    assert torch.equal(spec_augment(x, 0, 0, 2, generator=g), x)


def test_config_rejects_bad_values():
    for bad in ({"pooling": "avg"}, {"audio_injection": "concat"}, {"attention": "dot"},
                {"dropout": 1.0}, {"vocab_size": 2}):
        with pytest.raises(ValueError):
            AudioCaptionerConfig(**{"vocab_size": 10, **bad})
