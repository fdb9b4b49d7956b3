"""Studies, their protocols, and the families verdicts are corrected within.

A *study* is a directory ``results/<study>/`` holding ``runs/`` and a README.md or a ``protocol.yaml``.
Its protocol, written and committed before its runs, names the primary questions: each a claim of the
catalogue, the runs it is judged on (``runs``: values of run columns, e.g. the sweep), the context among
those (``at``: values of the context, e.g. the AdamW reference lr), the metric, the seeds, the equivalence
margin and the error rate. Holm's correction runs over a study's primary questions only, so loading other
runs or studies beside it never changes its verdicts; every other cell of the study is exploratory.

Runs outside any study form one family per directory that holds them (a sweep directory, or the
directory of single runs): each such family is corrected on its own and the report says it had no
protocol.

    # results/<study>/protocol.yaml
    study: my_study
    written: 2026-12-06          # a date, and whether it was committed before the runs
    written_before_runs: true
    alpha: 0.05                  # family-wise error rate over the questions below (Holm)
    margin: 0.005                # equivalence margin: a fraction of the reference arm's mean (AdamW's)
    early_tokens: 2.0e6          # update 3's "early": a budget in tokens
    questions:
      - id: tuned_text
        claim: tuned
        runs: {sweep: tuned, task: text}
        selection_seeds: [0, 1]  # choose each optimizer's best setting on these ...
        answer_seeds: [2, 3, 4, 5, 6]  # ... and answer on these
      - id: update2
        claim: update2
        runs: {sweep: lr_ratio}
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

PROTOCOL_FILE = "protocol.yaml"
DEFAULT_ALPHA = 0.05
DEFAULT_MARGIN = 0.005  # 0.5% of the reference arm's mean loss
QUESTION_KEYS = {"id", "claim", "runs", "at", "metric", "seeds", "selection_seeds", "answer_seeds", "margin",
                 "early_tokens", "note"}
PROTOCOL_KEYS = {"study", "written", "written_before_runs", "note", "alpha", "margin", "early_tokens", "questions"}


class ProtocolError(ValueError):
    """A protocol file that cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Question:
    id: str
    claim: str
    runs: dict[str, Any] = field(default_factory=dict)  # run column -> value (or list of values)
    at: dict[str, Any] = field(default_factory=dict)  # context attribute -> value
    metric: str = "final_val_loss"
    seeds: tuple[int, ...] | None = None  # None: every seed
    selection_seeds: tuple[int, ...] | None = None  # tuned: None = leave one seed out
    answer_seeds: tuple[int, ...] | None = None
    margin: float | None = None
    early_tokens: float | None = None
    note: str = ""


@dataclass(frozen=True)
class Protocol:
    study: str
    path: str
    written: str = ""
    written_before_runs: bool | None = None
    note: str = ""
    alpha: float = DEFAULT_ALPHA
    margin: float = DEFAULT_MARGIN
    early_tokens: float | None = None
    questions: tuple[Question, ...] = ()

    def margin_of(self, question: Question) -> float:
        return self.margin if question.margin is None else question.margin

    def early_tokens_of(self, question: Question) -> float | None:
        return self.early_tokens if question.early_tokens is None else question.early_tokens


def _seeds(value: Any, where: str) -> tuple[int, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(seed, int) and not isinstance(seed, bool) for seed in value):
        raise ProtocolError(f"{where} must be a list of seeds (whole numbers), got {value!r}")
    return tuple(value)


def _number(value: Any, where: str, low: float = 0.0, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low < value < high:
        raise ProtocolError(f"{where} must be a number in ({low:g}, {high:g}), got {value!r}")
    return float(value)


def parse_protocol(data: Any, path: str, claim_keys: set[str]) -> Protocol:
    """A protocol from its parsed YAML; ProtocolError naming ``path`` and the first problem."""
    if not isinstance(data, Mapping):
        raise ProtocolError(f"{path}: a protocol is a mapping of keys, got {type(data).__name__}")
    unknown = set(data) - PROTOCOL_KEYS
    if unknown:
        raise ProtocolError(f"{path}: unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
                            f"valid: {', '.join(sorted(PROTOCOL_KEYS))}")
    questions = []
    for index, item in enumerate(data.get("questions") or []):
        where = f"{path}: questions[{index}]"
        if not isinstance(item, Mapping):
            raise ProtocolError(f"{where} must be a mapping")
        unknown = set(item) - QUESTION_KEYS
        if unknown:
            raise ProtocolError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
                                f"valid: {', '.join(sorted(QUESTION_KEYS))}")
        if item.get("claim") not in claim_keys:
            raise ProtocolError(f"{where}: claim {item.get('claim')!r} is not in the catalogue; valid: "
                                f"{', '.join(sorted(claim_keys))}")
        for key in ("runs", "at"):
            if not isinstance(item.get(key) or {}, Mapping):
                raise ProtocolError(f"{where}: {key} must be a mapping of names to values")
        questions.append(Question(
            id=str(item.get("id") or f"q{index + 1}"), claim=item["claim"], runs=dict(item.get("runs") or {}),
            at=dict(item.get("at") or {}), metric=str(item.get("metric") or "final_val_loss"),
            seeds=_seeds(item.get("seeds"), f"{where}.seeds"),
            selection_seeds=_seeds(item.get("selection_seeds"), f"{where}.selection_seeds"),
            answer_seeds=_seeds(item.get("answer_seeds"), f"{where}.answer_seeds"),
            margin=None if item.get("margin") is None else _number(item["margin"], f"{where}.margin", 0, 1),
            early_tokens=None if item.get("early_tokens") is None else _number(item["early_tokens"],
                                                                              f"{where}.early_tokens"),
            note=str(item.get("note") or ""),
        ))
    ids = [question.id for question in questions]
    if len(set(ids)) < len(ids):
        raise ProtocolError(f"{path}: question ids must be unique, got {ids}")
    return Protocol(
        study=str(data.get("study") or Path(path).parent.name), path=path, written=str(data.get("written") or ""),
        written_before_runs=data.get("written_before_runs"), note=str(data.get("note") or ""),
        alpha=_number(data.get("alpha", DEFAULT_ALPHA), f"{path}: alpha", 0, 1),
        margin=_number(data.get("margin", DEFAULT_MARGIN), f"{path}: margin", 0, 1),
        early_tokens=None if data.get("early_tokens") is None else _number(data["early_tokens"],
                                                                          f"{path}: early_tokens"),
        questions=tuple(questions),
    )


def load_protocol(study_dir: Path, claim_keys: set[str]) -> Protocol | None:
    """The study's protocol, or None when it has none."""
    import yaml

    path = Path(study_dir) / PROTOCOL_FILE
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise ProtocolError(f"{path} cannot be read ({str(error).splitlines()[0]})") from None
    try:
        shown = path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        shown = path
    return parse_protocol(data, str(shown), claim_keys)


def study_root(run_dir: str) -> Path | None:
    """The committed study a run directory lies in: the nearest directory above it holding a runs/ folder
    and a README.md or a protocol.yaml (``results/<study>/``)."""
    if run_dir.startswith("wandb:"):
        return None
    for parent in Path(run_dir).resolve().parents:
        if (parent / "runs").is_dir() and ((parent / "README.md").is_file() or (parent / PROTOCOL_FILE).is_file()):
            return parent
    return None


def family_of(run_dir: str, sweep: str | None = None) -> tuple[str, str | None]:
    """(family name, study directory or None): the study a run belongs to, else the directory holding it
    (one family per sweep directory, named relative to the working directory when inside it); W&B runs by
    their project and sweep."""
    if run_dir.startswith("wandb:"):
        return f"{run_dir.rsplit('/', 1)[0]} {sweep or 'runs'}", None
    root = study_root(run_dir)
    if root is not None:
        return f"study {root.name}", str(root)
    parent = Path(run_dir).resolve().parent
    try:
        return str(parent.relative_to(Path.cwd().resolve())) or ".", None
    except ValueError:
        return str(parent), None
