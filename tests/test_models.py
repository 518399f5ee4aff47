"""Tests of vsm.models: shapes, parameter groups, initialisation, spec round trip."""

from __future__ import annotations

import math

import pytest
import torch
from vsm.models import MLPVAE, ConvVAE, from_spec


def test_mlp_shapes_and_groups():
    m = MLPVAE((2,), latent_dim=3, width=7)
    mu, logvar = m.encode(torch.randn(5, 2))
    assert mu.shape == (5, 3) and logvar.shape == (5, 3)
    assert m.decode(torch.randn(4, 5, 3)).shape == (4, 5, 2)
    assert m.data_dim == 2 and m.log_sigma2.dim() == 0
    assert math.isclose(float(m.log_sigma2.detach()), math.log(0.01), rel_tol=1e-6)
    enc = {id(p) for p in m.encoder_parameters()}
    dec = {id(p) for p in m.decoder_parameters()}
    assert not enc & dec
    assert enc | dec == {id(p) for p in m.parameters()}
    assert id(m.log_sigma2) in dec


def test_mlp_init_follows_paper():
    torch.manual_seed(1)
    m = MLPVAE((2,), width=400)
    enc_lin = [mod for mod in m.encoder.modules() if isinstance(mod, torch.nn.Linear)]
    dec_lin = [mod for mod in m.decoder.modules() if isinstance(mod, torch.nn.Linear)]
    assert len(enc_lin) == len(dec_lin) == 3
    assert all(float(lin.bias.detach().abs().max()) == 0.0 for lin in enc_lin)
    big = enc_lin[1].weight.detach()
    assert abs(float(big.std()) - 0.1) < 0.005
    assert abs(float(dec_lin[1].bias.detach().std()) - 0.1) < 0.03


def test_conv_shapes():
    m = ConvVAE(nc=1, latent_dim=4, ngf=2, ndf=2)
    x = torch.rand(3, 1, 32, 32)
    mu, logvar = m.encode(x)
    assert mu.shape == (3, 4) and logvar.shape == (3, 4)
    out = m.decode(torch.randn(2, 3, 4)).detach()
    assert out.shape == (2, 3, 1, 32, 32)
    assert float(out.min()) > 0 and float(out.max()) < 1
    assert float(m.log_sigma2.detach()) == 0.0


def test_bad_inputs_name_argument():
    m = MLPVAE((2,))
    with pytest.raises(ValueError, match="^x"):
        m.encode(torch.randn(3, 5))
    with pytest.raises(ValueError, match="^z"):
        m.decode(torch.randn(3, 5))
    with pytest.raises(ValueError, match="^latent_dim"):
        MLPVAE((2,), latent_dim=0)
    with pytest.raises(ValueError, match="^spec"):
        from_spec({"kind": "transformer"})


@pytest.mark.parametrize(
    "model", [MLPVAE((40,), latent_dim=3, width=5), ConvVAE(nc=3, latent_dim=2, ngf=2, ndf=3)]
)
def test_spec_round_trip(model):
    clone = from_spec(model.spec())
    clone.load_state_dict(model.state_dict())
    x = torch.rand(2, *model.data_shape)
    for a, b in zip(model.encode(x), clone.encode(x), strict=True):
        torch.testing.assert_close(a, b)
