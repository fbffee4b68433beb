"""`archbench fidelity --reference-from RUN`: a study that takes another study's architectures and
reference evaluations, so that only its proxy is trained.

The reference trainings are most of a study's cost (the default's are four times the proxy's).
Comparing proxy settings on one space means judging each against the same truth; training that
truth once and reusing it makes each further proxy cost only its own trainings.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from archbench.errors import UserError
from archbench.fidelity.options import FidelityOptions
from archbench.fidelity.plan import REFERENCE, FidelityPlan
from archbench.store.run import RunFolder


@dataclass(frozen=True)
class ReferenceStudy:
    """The study ``--reference-from`` names: its folder, settings and plan."""

    folder: RunFolder
    options: FidelityOptions
    plan: FidelityPlan

    @classmethod
    def open(cls, path: str | Path) -> ReferenceStudy:
        """Read the study at ``path``; nothing in it is changed or locked.

        Raises:
            UserError: not a run folder, a run of another kind, or a study without its plan or space copy.
        """
        from archbench.fidelity.runner import FIDELITY

        folder = RunFolder(path)
        if not folder.manifest_path.is_file():
            raise UserError(f"--reference-from: {folder.path} is not a run folder (no {folder.manifest_path.name})")
        manifest = folder.read_manifest()
        if manifest.kind != FIDELITY:
            raise UserError(f"--reference-from: {folder.path} holds a {manifest.kind} run, not a fidelity study")
        for needed in (folder.plan_path, folder.space_copy):
            if not needed.is_file():
                raise UserError(f"--reference-from: {needed} is missing: the study's architectures cannot be taken from it")
        return cls(folder, FidelityOptions.from_dict(manifest.options), FidelityPlan.read(folder.plan_path))

    def adopt(self, options: FidelityOptions) -> FidelityOptions:
        """``options`` with this study's space, architecture draw and reference training.

        Raises:
            UserError: the proxy trains on another dataset than this study's reference did.
        """
        source = self.options
        if options.proxy.dataset != source.reference.dataset:
            raise UserError(
                f"--reference-from: {self.folder.path}'s reference trained on {source.reference.dataset}; "
                f"the proxy must train on it too (--dataset {source.reference.dataset})"
            )
        return replace(
            options, space=source.space, archs=source.archs, pool=source.pool, seed=source.seed, latency=source.latency,
            reference=source.reference, reference_seeds=source.reference_seeds, reference_from=str(self.folder.path.resolve()),
        )

    def plan_for(self, options: FidelityOptions) -> FidelityPlan:
        """This study's architectures, with ``options``' number of proxy seeds."""
        return replace(self.plan, seeds=options.seeds)


def take_reference_parts(source: str | Path, folder: RunFolder, plan: FidelityPlan) -> int:
    """Copy into ``folder`` the source study's parts of the reference evaluations ``folder`` has no
    part of yet (all of them in a new study; after a ``kill -9`` mid-copy, the rest); returns how
    many. Each copy names its run and, in ``extra_json.reference_from``, where it came from. A
    reference evaluation the source never finished is left to this study to train."""
    from archbench.store import read_records, write_trial

    origin = RunFolder(source)
    wanted = {e.eval_id for e in plan.evaluations() if e.fidelity == REFERENCE} - set(folder.recorded_trial_ids())
    if not wanted or not origin.trials_dir.is_dir():
        return 0
    copied = 0
    for record in read_records(origin.path, on_bad="skip"):
        if record.trial_id in wanted:
            extra = {**json.loads(record.extra_json or "{}"), "reference_from": str(origin.path.resolve())}
            write_trial(folder.path, replace(record, run=folder.path.name, extra_json=json.dumps(extra)))
            copied += 1
    return copied


__all__ = ["ReferenceStudy", "take_reference_parts"]
