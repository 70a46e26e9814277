import pytest
import torch

from kirinuki.models import AlphaNet, create_model, list_models

SMALL_ARGS = {"kirinet": {"widths": [8, 16, 24], "blocks": [1, 1, 1], "head": 4},
              "unet-paper": {"base": 4, "depth": 3},
              "kirilite": {"decoder": [16, 12, 8, 8, 8], "head": 4}}


def test_registry_lists_models_and_rejects_unknown_names():
    assert {"kirinet", "kirilite", "unet-paper"} <= set(list_models())
    with pytest.raises(ValueError, match="kirinet"):
        create_model("no-such-net")


@pytest.mark.parametrize("name", sorted(SMALL_ARGS))
@pytest.mark.parametrize("size", [(1, 1), (37, 91), (64, 64), (130, 17)])
def test_any_size_in_unit_range(name, size):
    torch.manual_seed(0)
    model = create_model(name, **SMALL_ARGS[name]).eval()
    assert isinstance(model, AlphaNet)
    with torch.no_grad():
        out = model(torch.rand(2, 3, *size))
    assert out.shape == (2, 1, *size)
    assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("name", sorted(SMALL_ARGS))
def test_internal_padding_matches_explicit_padding(name):
    """The network pads by replicating the border; padding outside the same way gives the
    same alpha on the original area (the ONNX path relies on this)."""
    torch.manual_seed(0)
    model = create_model(name, **SMALL_ARGS[name]).eval()
    x = torch.rand(1, 3, 45, 70)
    m = model.pad_multiple
    padded = torch.nn.functional.pad(x, (0, (-70) % m, 0, (-45) % m), mode="replicate")
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(padded)[..., :45, :70])


@pytest.mark.parametrize("name", sorted(SMALL_ARGS))
def test_config_rebuilds_the_same_architecture(name):
    model = create_model(name, **SMALL_ARGS[name])
    again = create_model(name, **model.config)
    again.load_state_dict(model.state_dict())  # same shapes, strict
