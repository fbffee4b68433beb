"""Does a cheap signal rank architectures as the reference training does? τ/ρ, bootstrap CIs, noise ceiling
(Abdelfattah et al., ICLR 2021; Ru et al., ICLR 2021; NAS-Bench-Suite-Zero, Krishnakumar et al., NeurIPS 2022)."""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

__all__ = [
    "BASELINES",
    "COLUMNS",
    "SIGNALS",
    "VERDICTS",
    "FidelityAnalysis",
    "Signal",
    "SignalRow",
    "analyse",
    "arch_table",
    "kendall_tau_b",
    "spearman_rho",
    "top_overlap",
]


@dataclass(frozen=True)
class Signal:
    """A cheap signal's orientation (+1: larger predicts higher accuracy, -1: smaller does), its label,
    and whether it belongs to the architecture (same on every row) or to a training run (per seed)."""

    sign: int
    label: str
    arch_level: bool


SIGNALS: Mapping[str, Signal] = {
    "params": Signal(+1, "params", True),
    "macs": Signal(+1, "macs", True),
    "latency_ms_median": Signal(+1, "latency_ms", True),
    "synflow": Signal(+1, "synflow", True),
    "nwot": Signal(+1, "nwot", True),
    "grad_norm": Signal(+1, "grad_norm", True),
    "snip": Signal(+1, "snip", True),
    "val_acc": Signal(+1, "proxy val_acc", False),
    "val_knn_acc": Signal(+1, "proxy k-NN acc", False),
    "train_loss_sum": Signal(-1, "sum of train losses (SoTL)", False),
    "val_loss": Signal(-1, "proxy val_loss", False),
}
BASELINES = ("params", "macs")  # what every zero-cost proxy must beat (NAS-Bench-Suite-Zero)
VERDICTS = ("beats", "ties", "loses")
MIN_ARCHS = 3  # fewer archs than this: no τ, ρ or interval
TOP_SHARE = 0.25
_BATCH_ELEMENTS = 4_000_000  # resamples × n × n int8 signs held at once by the vectorised τ


# --- rank statistics, vectorised over leading axes (one row per bootstrap resample) ---------------

def kendall_tau_b(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Kendall's τ-b along ``axis``, as scipy.stats.kendalltau but for a whole batch of resamples at
    once: Σ sign(xi-xj)·sign(yi-yj) / √(untied-in-x pairs · untied-in-y pairs); NaN for constant input.

    >>> float(kendall_tau_b(np.array([1., 2, 3, 3]), np.array([1., 3, 2, 4])))
    0.5477...
    """
    x, y = np.moveaxis(np.asarray(x, float), axis, -1), np.moveaxis(np.asarray(y, float), axis, -1)
    sx = np.sign(x[..., :, None] - x[..., None, :]).astype(np.int8)
    sy = np.sign(y[..., :, None] - y[..., None, :]).astype(np.int8)
    concordance = (sx * sy).sum(axis=(-2, -1), dtype=np.int64)  # every pair counted twice: cancels
    untied_x = np.abs(sx).sum(axis=(-2, -1), dtype=np.int64)
    untied_y = np.abs(sy).sum(axis=(-2, -1), dtype=np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return concordance / np.sqrt(untied_x.astype(float) * untied_y)


def spearman_rho(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Spearman's ρ along ``axis`` (Pearson correlation of average ranks), as scipy.stats.spearmanr,
    vectorised; NaN for constant input."""
    rx = stats.rankdata(x, axis=axis)
    ry = stats.rankdata(y, axis=axis)
    rx = rx - rx.mean(axis=axis, keepdims=True)
    ry = ry - ry.mean(axis=axis, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (rx * ry).sum(axis=axis) / np.sqrt((rx * rx).sum(axis=axis) * (ry * ry).sum(axis=axis))


def _tau_difference(signal: np.ndarray, baseline: np.ndarray, reference: np.ndarray, axis: int = -1) -> np.ndarray:
    return kendall_tau_b(signal, reference, axis=axis) - kendall_tau_b(baseline, reference, axis=axis)


# --- results --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SignalRow:
    """One signal against the reference, over the ``n`` archs that have both values.

    τ and ρ are of the oriented signal (``sign`` × value), so a useful signal shows a positive τ.
    ``*_low``/``*_high`` are the percentile-bootstrap interval; ``beats_params``/``beats_macs`` the
    three-way verdict of the paired τ comparison (see `analyse`), ``p_beats_*`` the share of shared
    resamples in which this signal's τ is the higher, ``d_tau_*`` the interval of τ(signal) − τ(baseline).
    ``seed_tau``: mean Kendall τ of the signal between pairs of proxy seeds (its noise ceiling).
    """

    signal: str
    label: str
    sign: int
    n: int
    kendall_tau: float
    kendall_tau_low: float
    kendall_tau_high: float
    spearman_rho: float
    spearman_rho_low: float
    spearman_rho_high: float
    top_k: int
    top_overlap: float
    seed_tau: float | None
    beats_params: str | None
    p_beats_params: float | None
    d_tau_params_low: float | None
    d_tau_params_high: float | None
    beats_macs: str | None
    p_beats_macs: float | None
    d_tau_macs_low: float | None
    d_tau_macs_high: float | None
    note: str = ""

    def interval(self, statistic: str = "kendall_tau") -> str:
        """``0.61 [0.40, 0.78]`` (``n/a`` where undefined)."""
        value, low, high = (getattr(self, f"{statistic}{end}") for end in ("", "_low", "_high"))
        bounds = "[n/a]" if _missing(low) or _missing(high) else f"[{low:.2f}, {high:.2f}]"
        return f"{_fmt(value)} {bounds}"


COLUMNS = tuple(f.name for f in fields(SignalRow))  # to_frame's columns, in this order


@dataclass(frozen=True)
class FidelityAnalysis:
    """Every cheap signal of a fidelity study against the reference, plus its noise ceilings.

    ``n_archs``: archs with a reference accuracy (each row's ``n`` may be fewer);
    ``proxy_seed_tau``: mean Kendall τ of proxy val_acc between every pair of proxy seeds
    (``proxy_seed_pairs`` pairs; None with one seed); ``reference_seed_tau`` likewise for the
    reference; ``single_seed_tau``: mean over proxy seeds of one seed's val_acc τ against the
    reference, what a search that trains each arch once sees.
    """

    rows: list[SignalRow]
    n_archs: int
    proxy_seed_tau: float | None
    proxy_seed_pairs: int
    reference_seed_tau: float | None
    reference_seed_pairs: int
    single_seed_tau: float | None
    confidence: float
    n_boot: int
    seed: int

    def row(self, signal: str) -> SignalRow:
        for row in self.rows:
            if row.signal == signal:
                return row
        raise KeyError(f"signal {signal!r} was not analysed (analysed: {', '.join(r.signal for r in self.rows)})")

    @property
    def signals(self) -> list[str]:
        return [row.signal for row in self.rows]

    def to_frame(self) -> pd.DataFrame:
        """One row per signal, columns ``COLUMNS`` (NaN, not None, where undefined)."""
        frame = pd.DataFrame([asdict(row) for row in self.rows], columns=list(COLUMNS))
        for column in frame.columns:
            if column.startswith(("p_", "d_", "seed_tau")):
                frame[column] = frame[column].astype(float)
        return frame

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (``json.dumps`` without ``allow_nan``): NaN becomes None."""
        top = {f.name: _jsonable(getattr(self, f.name)) for f in fields(self) if f.name != "rows"}
        top["rows"] = [{key: _jsonable(value) for key, value in asdict(row).items()} for row in self.rows]
        return top

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FidelityAnalysis:
        """Inverse of `to_dict` (None back to NaN where the field is a plain float)."""
        floats = {f.name for f in fields(SignalRow) if f.type == "float"}
        rows = [SignalRow(**{k: (math.nan if k in floats and v is None else v) for k, v in row.items()})
                for row in data["rows"]]
        return cls(rows=rows, **{f.name: data[f.name] for f in fields(cls) if f.name != "rows"})

    def verdict(self) -> str:
        """One line: the best non-baseline signal and its verdict against params and macs, then proxy
        val_acc's τ against its seed-to-seed τ (the noise ceiling)."""
        if not self.rows:
            return f"no signal could be analysed ({self.n_archs} archs with a reference accuracy)"
        parts = []
        candidates = [r for r in self.rows if r.signal not in BASELINES and not _missing(r.kendall_tau)]
        if candidates:
            best = max(candidates, key=lambda r: r.kendall_tau)
            line = f"best cheap signal here: {best.signal} (τ {best.interval()})"
            against = []
            for baseline in BASELINES:
                verdict = getattr(best, f"beats_{baseline}")
                if verdict is not None and baseline in self.signals:
                    against.append(f"{verdict} {baseline} (τ {_fmt(self.row(baseline).kendall_tau)})")
            parts.append(line + (" " + " and ".join(against) if against else ""))
        else:
            parts.append("only baselines: " + ", ".join(f"{r.signal} τ {r.interval()}" for r in self.rows))
        if "val_acc" in self.signals:
            proxy = f"proxy val_acc τ {_fmt(self.row('val_acc').kendall_tau)}"
            if self.single_seed_tau is not None and self.proxy_seed_pairs:
                proxy += f" (one seed {_fmt(self.single_seed_tau)})"
            if self.proxy_seed_tau is not None:
                proxy += f", seed-to-seed τ {_fmt(self.proxy_seed_tau)} (noise ceiling)"
            parts.append(proxy)
        return "; ".join(parts)


# --- per-architecture values ----------------------------------------------------------------------

def arch_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per architecture (index ``arch_hash``) from the ok rows of ``frame``: each present
    signal's value, ``reference_acc`` (mean reference val_acc), ``reference_acc_std`` (its spread over
    reference seeds, NaN with one) and ``reference_seeds``.

    Training signals are the mean over the arch's proxy rows; architecture-level signals (params,
    zero-cost scores, ...) the mean over its proxy rows, or over any of its rows where no proxy row
    has them. Archs without a reference accuracy are dropped.
    """
    ok = _ok_rows(frame)
    proxy, reference = ok[ok["fidelity"] == "proxy"], ok[ok["fidelity"] == "reference"]
    ref_by_seed = reference.groupby(["arch_hash", "seed"])["val_acc"].mean().dropna()
    by_arch = ref_by_seed.groupby(level="arch_hash")
    table = pd.DataFrame({"reference_acc": reference.groupby("arch_hash")["val_acc"].mean(),
                          "reference_acc_std": by_arch.std(ddof=1), "reference_seeds": by_arch.size()})
    table = table.dropna(subset=["reference_acc"])
    table["reference_seeds"] = table["reference_seeds"].fillna(0).astype(int)
    if "arch_summary" in ok.columns:
        table.insert(0, "arch_summary", ok.groupby("arch_hash")["arch_summary"].first().reindex(table.index))
    for name, signal in SIGNALS.items():
        if name not in ok.columns:
            continue
        values = proxy.groupby("arch_hash")[name].mean().reindex(table.index)
        if signal.arch_level:
            values = values.fillna(ok.groupby("arch_hash")[name].mean().reindex(table.index))
        if values.notna().any():
            table[name] = values.astype(float)
    table.index.name = "arch_hash"
    return table


def _ok_rows(frame: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in ("arch_hash", "fidelity", "seed", "status", "val_acc") if c not in frame.columns]
    if missing:
        raise ValueError(f"evaluation frame lacks column(s) {', '.join(missing)}")
    ok = frame[frame["status"] == "ok"].copy()
    for name in SIGNALS:
        if name in ok.columns:
            ok[name] = pd.to_numeric(ok[name], errors="coerce").astype(float)
    return ok


def _per_seed(rows: pd.DataFrame, column: str) -> pd.DataFrame:
    """arch × seed table of ``column`` (mean of duplicates), seeds with no value dropped."""
    if column not in rows.columns:
        return pd.DataFrame()
    return rows.groupby(["arch_hash", "seed"])[column].mean().unstack("seed").dropna(axis=1, how="all")


def _seed_to_seed_tau(per_seed: pd.DataFrame) -> tuple[float | None, int]:
    """Mean Kendall τ over every pair of seeds (archs with both values), and the number of pairs."""
    taus = []
    for a, b in combinations(per_seed.columns, 2):
        both = per_seed[[a, b]].dropna()
        if len(both) >= MIN_ARCHS:
            tau = float(kendall_tau_b(both[a].to_numpy(), both[b].to_numpy()))
            if not math.isnan(tau):
                taus.append(tau)
    return (float(np.mean(taus)) if taus else None), len(taus)


def _single_seed_tau(per_seed: pd.DataFrame, reference: pd.Series) -> float | None:
    taus = []
    for seed in per_seed.columns:
        both = pd.concat([per_seed[seed], reference], axis=1, join="inner").dropna()
        if len(both) >= MIN_ARCHS:
            tau = float(kendall_tau_b(both.iloc[:, 0].to_numpy(), both.iloc[:, 1].to_numpy()))
            if not math.isnan(tau):
                taus.append(tau)
    return float(np.mean(taus)) if taus else None


# --- the analysis ---------------------------------------------------------------------------------

def top_overlap(signal: np.ndarray, reference: np.ndarray, share: float = TOP_SHARE) -> tuple[float, int]:
    """Share of the top ``k = max(1, ceil(share·n))`` archs by reference that are also in the signal's
    top k (both larger-is-better), and k. Ties at a cut share its remaining places evenly, so the
    value is the expected overlap under random tie-breaking (exact count when nothing ties).

    >>> top_overlap(np.array([8., 1, 7, 2, 3, 4, 5, 6]), np.array([8., 7, 1, 2, 3, 4, 5, 6]))
    (0.5, 2)
    """
    k = max(1, math.ceil(share * len(reference)))
    return float(np.sum(_top_membership(signal, k) * _top_membership(reference, k)) / k), k


def _top_membership(values: np.ndarray, k: int) -> np.ndarray:
    """Probability that each element is in the top k, ties at the k-th value broken at random."""
    cut = np.sort(values)[::-1][k - 1]
    above = values > cut
    at_cut = values == cut
    return np.where(above, 1.0, np.where(at_cut, (k - above.sum()) / at_cut.sum(), 0.0))


def analyse(frame: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0, confidence: float = 0.95) -> FidelityAnalysis:
    """Rank agreement of every cheap signal in ``frame`` with the reference accuracy.

    Per signal (over archs with both values, signal oriented by ``SIGNALS``): Kendall τ-b and Spearman
    ρ with percentile-bootstrap intervals (``scipy.stats.bootstrap``, ``paired=True``: architectures are
    resampled, ``n_boot`` times, ``rng=seed`` for every call so that signals over the same archs share
    their resamples), top-25% overlap, seed-to-seed τ, and the verdict against params and macs.

    Verdict rule: on the archs that have the signal, the baseline and a reference, the paired
    bootstrap gives τ(signal) − τ(baseline) per resample; the signal **beats** the baseline when the
    point difference is > 0 and the ``confidence`` percentile interval of the difference lies above 0,
    **loses** when the difference is < 0 and the interval lies below 0, and otherwise **ties** (also
    when the interval is undefined). A baseline is not compared with itself (None). ``p_beats_*`` is
    the share of resamples where the signal's τ is higher (reported, not used by the rule).

    Percentile rather than BCa intervals: BCa's jackknife acceleration and bias correction are
    unstable for the ~10-50 archs a fidelity study trains, and with tied signals (params shared by
    many archs) it returns NaN or degenerate intervals. A resample can be degenerate too (all copies
    of one arch: τ undefined); such resamples are dropped before taking percentiles, and the row's
    ``note`` says how many, or the interval is NaN if more than half are.

    Speed: τ and ρ are vectorised over resamples (int8 sign matrices), so 16 archs × 10 signals ×
    2000 resamples take ~0.35 s (100 archs: ~6 s; time and memory grow as n²). Beyond ~44 archs the
    resamples are drawn in batches to bound memory, which changes scipy's random stream but not the
    determinism or the sharing of resamples between signals.

    Args:
        frame: evaluations, one row per arch × fidelity × seed (see the package's runner); only rows
            with status "ok" count. Signals missing or all-NaN are skipped.
        n_boot: bootstrap resamples per interval (≥ 1).
        seed: seeds every bootstrap; the result is deterministic for it.
        confidence: level of every interval.

    Example:
        >>> import pandas as pd
        >>> ref = [0.90, 0.85, 0.80, 0.70, 0.60, 0.55, 0.50, 0.40]  # reference val_acc of archs a0..a7
        >>> rows = [dict(arch_hash=f"a{i}", fidelity=f, seed=0, status="ok", params=p, val_acc=acc)
        ...         for i, (p, r) in enumerate(zip([3, 8, 1, 6, 5, 2, 7, 4], ref))
        ...         for f, acc in (("reference", r), ("proxy", r - 0.3))]
        >>> result = analyse(pd.DataFrame(rows), n_boot=200)
        >>> result.signals, result.n_archs
        (['params', 'val_acc'], 8)
        >>> row = result.row("val_acc")
        >>> row.kendall_tau, row.beats_params, row.p_beats_params
        (1.0, 'beats', 0.995)
        >>> print(result.verdict())
        best cheap signal here: val_acc (τ 1.00 [1.00, 1.00]) beats params (τ 0.00); proxy val_acc τ 1.00
    """
    if int(n_boot) != n_boot or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, not {n_boot!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), not {confidence!r}")
    ok = _ok_rows(frame)
    table = arch_table(frame)
    reference = table["reference_acc"]
    proxy = ok[ok["fidelity"] == "proxy"]
    oriented = {name: table[name] * SIGNALS[name].sign for name in SIGNALS if name in table.columns}
    seed, n_boot, confidence = int(seed), int(n_boot), float(confidence)  # plain types: to_dict is JSON
    bootstrap = _Bootstrap(n_boot=n_boot, seed=seed, confidence=confidence)

    rows = []
    for name, values in oriented.items():
        paired = pd.concat([values, reference], axis=1).dropna()
        x, y = paired.iloc[:, 0].to_numpy(), paired.iloc[:, 1].to_numpy()
        seed_tau, _ = _seed_to_seed_tau(_per_seed(proxy, name))
        fields_: dict[str, Any] = {"signal": name, "label": SIGNALS[name].label, "sign": SIGNALS[name].sign,
                                   "n": len(x), "seed_tau": seed_tau}
        if len(x) < MIN_ARCHS:
            rows.append(_empty_row(fields_, f"fewer than {MIN_ARCHS} archs with both values"))
            continue
        notes = []
        tau, tau_low, tau_high, note = bootstrap.interval((x, y), kendall_tau_b)
        notes += [f"τ: {note}"] if note else []
        rho, rho_low, rho_high, note = bootstrap.interval((x, y), spearman_rho)
        notes += [f"ρ: {note}"] if note else []
        overlap, k = top_overlap(x, y)
        fields_.update(kendall_tau=tau, kendall_tau_low=tau_low, kendall_tau_high=tau_high, spearman_rho=rho,
                       spearman_rho_low=rho_low, spearman_rho_high=rho_high, top_k=k, top_overlap=overlap)
        for baseline in BASELINES:
            comparison = (None, None, None, None)
            if baseline != name and baseline in oriented:
                shared = pd.concat([values, oriented[baseline], reference], axis=1).dropna()
                if len(shared) >= MIN_ARCHS:
                    comparison = bootstrap.compare(*(shared.iloc[:, i].to_numpy() for i in range(3)))
            fields_.update({f"beats_{baseline}": comparison[0], f"p_beats_{baseline}": comparison[1],
                            f"d_tau_{baseline}_low": comparison[2], f"d_tau_{baseline}_high": comparison[3]})
        rows.append(SignalRow(**fields_, note="; ".join(notes)))

    proxy_acc = _per_seed(proxy, "val_acc")
    proxy_seed_tau, proxy_pairs = _seed_to_seed_tau(proxy_acc)
    reference_seed_tau, reference_pairs = _seed_to_seed_tau(_per_seed(ok[ok["fidelity"] == "reference"], "val_acc"))
    return FidelityAnalysis(
        rows=rows, n_archs=len(table), proxy_seed_tau=proxy_seed_tau, proxy_seed_pairs=proxy_pairs,
        reference_seed_tau=reference_seed_tau, reference_seed_pairs=reference_pairs,
        single_seed_tau=_single_seed_tau(proxy_acc, reference), confidence=confidence, n_boot=n_boot, seed=seed,
    )


@dataclass(frozen=True)
class _Bootstrap:
    """scipy.stats.bootstrap as `analyse` calls it: paired, percentile, the same seed every call."""

    n_boot: int
    seed: int
    confidence: float

    def distribution(self, data: tuple[np.ndarray, ...], statistic: Callable[..., np.ndarray]) -> np.ndarray:
        n = len(data[0])
        with warnings.catch_warnings():
            # scipy warns (naming BCa) whenever a percentile is NaN; degenerate resamples are handled below
            warnings.simplefilter("ignore", stats.DegenerateDataWarning)
            result = stats.bootstrap(data, statistic, n_resamples=self.n_boot, paired=True, vectorized=True,
                                     method="percentile", confidence_level=self.confidence, rng=self.seed,
                                     batch=max(1, _BATCH_ELEMENTS // (n * n)))
        return np.asarray(result.bootstrap_distribution, float)

    def percentiles(self, distribution: np.ndarray) -> tuple[float, float, str]:
        """The interval over the finite resamples (the same quantiles scipy takes), and a note."""
        finite = distribution[np.isfinite(distribution)]
        dropped = distribution.size - finite.size
        if finite.size * 2 < distribution.size:
            return math.nan, math.nan, f"{dropped} of {distribution.size} resamples degenerate: no interval"
        alpha = (1.0 - self.confidence) / 2.0
        low, high = stats.quantile(finite, np.array([alpha, 1.0 - alpha]))
        note = f"{dropped} of {distribution.size} resamples degenerate, dropped" if dropped else ""
        return float(low), float(high), note

    def interval(self, data: tuple[np.ndarray, ...], statistic: Callable[..., np.ndarray]
                 ) -> tuple[float, float, float, str]:
        point = float(statistic(*data))
        if math.isnan(point):
            return point, math.nan, math.nan, "constant input"
        return (point, *self.percentiles(self.distribution(data, statistic)))

    def compare(self, signal: np.ndarray, baseline: np.ndarray, reference: np.ndarray
                ) -> tuple[str | None, float | None, float, float]:
        """(verdict, share of resamples where the signal's τ is higher, interval of the τ difference)."""
        point = float(_tau_difference(signal, baseline, reference))
        if math.isnan(point):
            return None, None, math.nan, math.nan
        distribution = self.distribution((signal, baseline, reference), _tau_difference)
        low, high, _ = self.percentiles(distribution)
        finite = distribution[np.isfinite(distribution)]
        share = float(np.mean(finite > 0)) if finite.size else math.nan
        if point > 0 and low > 0:
            verdict = "beats"
        elif point < 0 and high < 0:
            verdict = "loses"
        else:
            verdict = "ties"
        return verdict, share, low, high


def _empty_row(values: dict[str, Any], note: str) -> SignalRow:
    blank = {f.name: (math.nan if f.type == "float" else None) for f in fields(SignalRow)}
    blank.update(top_k=0, top_overlap=math.nan)
    return SignalRow(**{**blank, **values, "note": note})


def _missing(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _fmt(value: float | None) -> str:
    return "n/a" if _missing(value) else f"{value:.2f}"


def _jsonable(value: Any) -> Any:
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value
