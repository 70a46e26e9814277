"""kirilite: our EfficientNet-Lite0 encoder is the published network, and its ImageNet
weights really load (checked by classifying a photograph, not only by key names)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from efficientnet_lite_pytorch import EfficientNet
from PIL import Image
from skimage import data

from conftest import tiny_overrides
from kirinuki.config import load_config
from kirinuki.models import create_model
from kirinuki.models.kirilite import FOREGROUND_SHARE, EfficientNetLite0, load_lite0_state, pretrained_lite0_file
from kirinuki.samples import sample_paths
from kirinuki.train import train

SMALL = {"decoder": [16, 12, 8, 8, 8], "head": 4}


@pytest.fixture(scope="module")
def lite0_state():
    return load_lite0_state()


def _imagenet_logits(taps: list[torch.Tensor], state: dict) -> torch.Tensor:
    """The classifier head that kirilite leaves out, applied from the published tensors."""
    h = F.conv2d(taps[-1], state["_conv_head.weight"])
    h = F.batch_norm(h, state["_bn1.running_mean"], state["_bn1.running_var"], state["_bn1.weight"],
                     state["_bn1.bias"], eps=1e-3)
    return F.linear(F.relu6(h).mean((2, 3)), state["_fc.weight"], state["_fc.bias"])


def test_published_weights_classify_a_cat(lite0_state):
    model = create_model("kirilite", **SMALL).eval()
    summary = model.load_pretrained()
    assert summary["tensors"] == len(model.encoder.state_dict())
    assert set(summary["unused"]) == {k for k in lite0_state if k.startswith(("_conv_head", "_bn1.", "_fc"))}
    picture = np.asarray(Image.fromarray(data.chelsea()).resize((224, 224), Image.Resampling.BILINEAR))
    x = torch.from_numpy(picture.copy()).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        taps = model.encoder((x - model.mean) / model.std)  # the network's own normalisation
        top = _imagenet_logits(taps, lite0_state).softmax(1)[0]
    # ImageNet classes 281-285 are the domestic cats (tabby, tiger cat, Persian, Siamese, Egyptian).
    assert int(top.argmax()) in range(281, 286) and float(top[281:286].sum()) > 0.8
    # The same network from random weights does not know the cat.
    random_net = create_model("kirilite", **SMALL).eval()
    with torch.no_grad():
        random_top = _imagenet_logits(random_net.encoder((x - 0.5) / 0.5), lite0_state).softmax(1)[0]
    assert float(random_top[281:286].sum()) < 0.5


def test_encoder_matches_the_reference_implementation(lite0_state):
    """Same weights, same input: our encoder's 1/32 features equal those of the loader package
    (TensorFlow 'same' padding reproduced exactly)."""
    reference = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(pretrained_lite0_file())).eval()
    ours = EfficientNetLite0().eval()
    ours.load_state_dict({k: lite0_state[k] for k in ours.state_dict()})
    x = torch.rand(1, 3, 96, 160) * 2 - 1
    with torch.no_grad():
        expected = reference._swish(reference._bn0(reference._conv_stem(x)))
        for block in reference._blocks:
            expected = block(expected)
        got = ours(x)
    assert [t.shape[1] for t in got] == [16, 24, 40, 112, 320]
    torch.testing.assert_close(got[-1], expected, rtol=1e-4, atol=1e-4)


def test_mismatched_weights_are_an_error_not_a_random_start(tmp_path, lite0_state):
    bad = dict(lite0_state)
    bad["_blocks.3._project_conv.weight"] = torch.zeros(1, 1, 1, 1)
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="_blocks.3._project_conv.weight"):
        create_model("kirilite", **SMALL).load_pretrained(tmp_path / "bad.pth")


def test_a_new_run_starts_from_the_imagenet_weights(tiny_data, tmp_path, lite0_state):
    cfg = load_config("lite", overrides=tiny_overrides(
        steps=1, model={"name": "kirilite", "args": SMALL, "work_size": 64, "pretrained": True}))
    result = train(cfg, tiny_data, tmp_path, progress=False)
    stem = result.model.encoder._conv_stem.weight.detach()
    # One small step of AdamW moves each weight by about lr; random weights would be far off.
    assert torch.allclose(stem, lite0_state["_conv_stem.weight"], atol=5 * cfg.optim.lr)
    assert not torch.allclose(stem, lite0_state["_conv_stem.weight"], atol=0)


def test_a_new_network_starts_from_the_foreground_share_not_one_half(lite0_state):
    """Before any training the network answers about FOREGROUND_SHARE everywhere (not 0.5,
    from which a run can trap its head: see the model's docstring)."""
    picture = torch.from_numpy(np.array(Image.open(sample_paths()[0]).convert("RGB").resize((224, 320))))
    picture = picture.permute(2, 0, 1)[None].float() / 255
    for seed in range(3):
        torch.manual_seed(seed)
        model = create_model("kirilite")
        model.encoder.load_state_dict({k: lite0_state[k] for k in model.encoder.state_dict()})
        with torch.no_grad():
            alpha = model.eval()(picture)
        assert abs(float(alpha.mean()) - FOREGROUND_SHARE) < 0.05


def test_encoder_learning_rate_share(tiny_data, tmp_path, lite0_state):
    """optim.encoder_lr_ratio: the pretrained encoder moves by its share of the rate, the
    rest by the whole rate (AdamW's first step moves a weight by about the rate)."""
    lr = 1e-3
    cfg = load_config("lite", overrides=tiny_overrides(
        steps=1, model={"name": "kirilite", "args": SMALL, "work_size": 64, "pretrained": True},
        optim={"lr": lr, "warmup_steps": 0, "weight_decay": 0.0, "encoder_lr_ratio": 0.1}))
    result = train(cfg, tiny_data, tmp_path, progress=False)
    moved = (result.model.encoder._conv_stem.weight.detach() - lite0_state["_conv_stem.weight"]).abs().max()
    assert 0.05 * lr < moved <= 0.1 * lr * 1.01
    torch.manual_seed(cfg.seed)  # the run's seed: the decoder's starting weights
    fresh = create_model("kirilite", **SMALL)
    head_moved = (result.model.head[1].weight.detach() - fresh.head[1].weight).abs().max()
    assert 0.5 * lr < head_moved <= lr * 1.01
    # A network trained from scratch has no pretrained part: the share is an error, not ignored.
    with pytest.raises(ValueError, match="no pretrained encoder"):
        train(load_config("default", overrides=tiny_overrides(steps=1, optim={"encoder_lr_ratio": 0.1})),
              tiny_data, tmp_path / "kirinet", progress=False)


@pytest.mark.parametrize("frozen", [False, True])
def test_frozen_pretrained_batchnorm_keeps_its_statistics(tiny_data, tmp_path, lite0_state, frozen):
    """optim.freeze_pretrained_bn: the encoder's BatchNorm statistics stay ImageNet's through
    training and in-training validation, while its scale and shift and the decoder's
    statistics still move; without it, a step moves them."""
    cfg = load_config("lite", overrides=tiny_overrides(
        steps=3, val_every=2, val_images=2, model={"name": "kirilite", "args": SMALL, "work_size": 64, "pretrained": True},
        optim={"freeze_pretrained_bn": frozen}))
    result = train(cfg, tiny_data, tmp_path, val_root=tiny_data / "val", progress=False)
    bn = result.model.encoder._bn0
    kept = torch.equal(bn.running_mean, lite0_state["_bn0.running_mean"])
    assert kept is frozen
    assert not torch.equal(bn.weight.detach(), lite0_state["_bn0.weight"])
    torch.manual_seed(cfg.seed)
    fresh = create_model("kirilite", **SMALL)
    assert not torch.equal(result.model.bottleneck[1].running_mean, fresh.bottleneck[1].running_mean)
    if frozen:  # asked of a network trained from scratch, it is an error, not ignored
        with pytest.raises(ValueError, match="no pretrained encoder"):
            train(load_config("default", overrides=tiny_overrides(steps=1, optim={"freeze_pretrained_bn": True})),
                  tiny_data, tmp_path / "kirinet", progress=False)
