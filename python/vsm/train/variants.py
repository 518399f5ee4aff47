"""Variants: vsm's own estimators and parametrisation, or the paper code's (``TrainConfig.variant``).

:func:`variant_options` turns a variant name and a data set into :class:`VariantOptions`, the
concrete choices that Algorithm 1's functions (:mod:`vsm.train.algorithm`) and
:func:`vsm.train.build_model` take.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Literal

from .. import _validate as V
from ..data import Dataset
from ..objectives import CrossTerm, Estimator, PsiDerivative

__all__ = ["PAPER_EPOCH_SIZE", "VARIANTS", "Variant", "VariantOptions", "variant_options"]

Variant = Literal["vsm", "paper"]
VARIANTS: tuple[Variant, ...] = typing.get_args(Variant)
"""Estimator and parametrisation families: vsm's own, or the paper code's (:func:`variant_options`)."""

PAPER_EPOCH_SIZE = 100_000
"""Fresh 2-D points per epoch in the authors' ``run_bilevel_toy.py`` (100 iterations of 1000)."""


@dataclass(frozen=True)
class VariantOptions:
    """The concrete choices of a variant for one kind of data (:func:`variant_options`).

    Attributes:
        m2_estimator: ``vsm.objectives.m2``'s ``estimator``.
        m3_estimator, m3_cross: ``vsm.objectives.m3``'s ``estimator`` and ``cross``.
        m3_psi: ``derivative`` of ψ (``vsm.objectives.encoder_x_score``) in the L_B learning step.
        fae_encoder_psi: ``psi_derivative`` of ``vsm.objectives.fae_loss`` in the FAE encoder step
            (the decoder step always uses the partial ψ, as vsm and the authors both do).
        noise_param, sd_head: the model's parametrisation (:class:`vsm.models.GaussianVAE`).
        epoch_size: fresh generated points per epoch (``vsm.data.Dataset.batch``), or None for
            fresh minibatches.
    """

    m2_estimator: Estimator = "samples"
    m3_estimator: Estimator = "samples"
    m3_cross: CrossTerm = "per-sample"
    m3_psi: PsiDerivative = "partial"
    fae_encoder_psi: PsiDerivative = "partial"
    noise_param: str = "log_sigma2"
    sd_head: str = "logvar"
    epoch_size: int | None = None


def variant_options(variant: str, data: Dataset) -> VariantOptions:
    """What ``variant`` means for ``data``.

    - "vsm": vsm's estimators and parametrisation (MATH.md Part I): every default.
    - "paper": the code the authors used for that kind of data (MATH.md §9, §10):

      - 2-D data (``data_shape == (2,)``; ``models/bilevels.py``, ``run_bilevel_toy.py``): L_S and
        L_B with the minibatch mean (one z per datum there), L_B's ψ a total derivative through
        the reparametrised z, decoder noise as log σ, encoder SD softplus, and, for generated data,
        100 000 fresh points per epoch;
      - every other data set (images, MNIST-1D; ``models/VAEs.py``, ``run_clean_ae.py``): L_B's
        cross term mean_n f_n·Σ_m ψ_m, decoder noise as log σ, encoder SD exp(h) (h = log s);
      - on both, the FAE encoder step with the total-derivative ψ (``VAEs.py::joint_score``,
        ``reparam=True``; the 2-D code has no FAE, so its only FAE is used).

      The initialisation of :class:`vsm.models.MLPVAE` already is the authors' 2-D one (weights
      N(0, 0.1²), encoder biases 0, decoder biases N(0, 0.1²), σ = 0.1), and the image models
      start at σ = 1 as theirs did.

    Raises:
        ValueError: an unknown variant.
    """
    V.choice("variant", variant, VARIANTS)
    if variant == "vsm":
        return VariantOptions()
    if tuple(data.data_shape) == (2,):
        return VariantOptions(
            m2_estimator="minibatch",
            m3_estimator="minibatch",
            m3_psi="total",
            fae_encoder_psi="total",
            noise_param="log_sigma",
            sd_head="softplus",
            epoch_size=PAPER_EPOCH_SIZE if data.train is None else None,
        )
    return VariantOptions(
        m3_cross="summed", fae_encoder_psi="total", noise_param="log_sigma", sd_head="logsd"
    )
