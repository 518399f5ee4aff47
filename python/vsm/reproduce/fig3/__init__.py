"""Figure 3 at convergence: the eight objectives on the 2-D data sets, judged claim by claim.

For each estimator family (``variant``: "vsm", and "paper" = the authors' 2-D code's estimators
and parametrisation, ``TrainConfig(variant="paper")``), data set ("sparse", "mixture"),
objective (kl-elbo, kl-m1, fd-m1, kl-m2, fd-m2, kl-m3, fd-m3, fae), number of encoder updates per
decoder update K_enc and seed, one Gaussian VAE is trained by :class:`vsm.train.Trainer`
(Algorithm 1, no bi-level step) until it has converged, and is evaluated on held-out data. The
seeds of one setting train together as one batched run (``TrainConfig(seeds=...)``) when the
trainer offers it, else one after another.

The paper's 2-D settings (source: MATH.md §9 "Synthetic 2-D", from the authors'
``run_bilevel_toy.py`` / ``models/bilevels.py``, and issue 14's runs of that script):

- no bi-level step (``K=0`` in the authors' script: with its default one differentiated step even
  L_θ fails, so Fig. 3 was most likely made without it);
- an *iteration* is one decoder update preceded by K_enc encoder updates on the same minibatch
  (the authors' ``M``), so K_enc does not starve the decoder (the trainer's ``steps`` count
  encoder updates: a run of I iterations is ``steps = I · K_enc``);
- the ELBO baseline (kl-elbo): one Adam at 1e-4 for encoder and decoder. The authors' script
  ignores ``M`` for it, so kl-elbo is run once, at K_enc = 1, and is the same baseline at every
  K_enc;
- the score-matching objectives: decoder (and σ) Adam 1e-4; encoder plain SGD at 1e-2 for KLD
  inference and 1e-3 for FD inference. FAE is not in the authors' 2-D script; it gets the
  optimiser of their image code's FAE, Adam at the decoder's rate for both networks (with plain
  SGD, vsm's FAE encoder step diverged within 200 iterations on "mixture" at 1e-3 and within 20
  at 1e-2);
- batch 1000; N = 3 posterior samples per datum for vsm (with N = 1, vsm's per-datum L_S is
  exactly L_θ, MATH.md §6) and 1 for the paper variant (the authors' 2-D code draws one z per
  datum and averages over the minibatch instead, MATH.md §9 "Code caveat");
- hidden width 100 on "sparse" and 30 on "mixture" (the script's defaults; at width 30 on
  "sparse" even the authors' ELBO loses a latent dimension); L = 2; η = 0;
- evaluation on 5000 test points: NLL = −log p̂(x) by importance sampling with the prior as
  proposal and SM loss Ĵ(x) ("FD minus a constant", MATH.md §9) from K = 10⁴ prior samples
  *shared by all test points*, as the authors' ``log_likelihood``/``FD`` draw them (here the same
  samples for every objective and variant of a seed, so paired differences do not carry IS
  noise).

Convergence (:func:`convergence`): a run stops once, over the last 10 % of its iterations,
σ² changed by less than ``tol_sigma2`` (relative) and the decoder loss by less than
``tol_loss`` (relative to max(|loss|, 1)) plus twice the standard error of that change (the two
halves of the window are compared), checked every ``check_every`` iterations after
``min_iters``; or at the cap ``max_iters``. Each run records whether it converged. A batched
setting stops when all its seeds have converged.

Posterior-collapse diagnostics per run: the spread of the encoder means over the test set
(SD of μ_j(x) per latent dim j), the mean posterior SD (mean of s_j(x)), and the number of
active dimensions (Var_x μ_j(x) > 0.01, Burda et al. 2016's "active units").

The claims of the paper's §5.1 (and §5's remark on FAE) are judged by
:mod:`vsm.reproduce.claims` from paired differences of the test NLL over seeds (thresholds
``eq_tol`` and ``fail_margin``, nats); see :data:`~vsm.reproduce.fig3.report.CLAIMS`.
``results.json`` holds every run,
the per-setting table, the claim table and the verdicts; ``fig3.png`` the figure (both
variants); ``fig3.md`` the markdown section of ``docs/reproducing.md``
(``python -m vsm.reproduce.fig3 render out/fig3/results.json --doc docs/reproducing.md``
splices it in).

Modes: ``quick()`` is a smoke test (minutes; far from converged); ``medium()`` is sized to
finish in about 30 minutes on a quiet 2-core CPU with 2 worker processes of 1 thread (see its
docstring for what it changes); ``full()`` is the paper's setting with convergence (hours).

Layout: :mod:`.config` (settings), :mod:`.training` (one setting: training, convergence,
evaluation), :mod:`.sweep` (:func:`run`), :mod:`.report` (tables, claims), :mod:`.figure`,
:mod:`.markdown` (the markdown section; ``python -m vsm.reproduce.fig3 render``). Their public
names are importable from here.
"""

from __future__ import annotations

from .config import (
    ACTIVE_VAR,
    EVAL_SEED,
    OBJECTIVES,
    VARIANTS,
    Fig3Config,
    batched_seeds_available,
    optimiser_settings,
    settings,
    train_config,
    variants_available,
)
from .figure import plot, plot_curves
from .markdown import BEGIN, END, compare_markdown, main, markdown, splice
from .merge import merge
from .report import Claim, claim_settings, judge, overall_verdicts, summarize, table
from .sweep import check_config, run
from .training import _Driver as _Driver
from .training import _Series as _Series
from .training import convergence, evaluate_model, train_setting

__all__ = [
    "ACTIVE_VAR",
    "BEGIN",
    "END",
    "EVAL_SEED",
    "OBJECTIVES",
    "VARIANTS",
    "Claim",
    "Fig3Config",
    "batched_seeds_available",
    "check_config",
    "claim_settings",
    "compare_markdown",
    "convergence",
    "evaluate_model",
    "judge",
    "main",
    "markdown",
    "merge",
    "optimiser_settings",
    "overall_verdicts",
    "summarize",
    "plot",
    "plot_curves",
    "run",
    "settings",
    "splice",
    "table",
    "train_config",
    "train_setting",
    "variants_available",
]
