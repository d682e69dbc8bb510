"""The node's policy: what it agrees to do, read from its own `policy.toml`.

A node refuses by default: a task kind runs only when the policy names it, and analysis
algorithms only when they are on the allow-list. The disclosure section is the node's own
limits on what any aggregate may reveal (STANDARDS §9).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from oncofed.analysis.disclosure import AnalysisRules
from oncofed.privacy.policy import DisclosurePolicy
from oncofed.settings import ConfigError


class LearningPolicy(BaseModel):
    """Federated training and validation at this node (`[learning]` in policy.toml).

    The node runs only catalogue models it lists (`name@version`), and trains only within
    these minimums, whatever a run asks for: few cases or tiny batches make weights and
    metrics closer to the individual records they came from.
    """

    allowed_models: list[str] = Field(default_factory=list)
    min_train_cases: int = Field(50, ge=1)  # patients in the training split
    min_batch_size: int = Field(16, ge=1)
    min_local_epochs: int = Field(1, ge=1)
    max_rounds: int = Field(100, ge=1, le=1000)
    # Share of patients held back at this node to report a model's validation metrics;
    # those need at least the disclosure minimum of patients (`min_count`).
    validation_fraction: float = Field(0.2, ge=0.1, le=0.5)


class MediatorLimits(BaseModel):
    """Limits for each upstream network's mediator key (``[mediator]`` in policy.toml).

    Every key is its own requester with its own daily budget and rate limit: a busy
    network uses up only its own allowance, never another network's or a researcher's,
    and a leaked key is limited to what one network may ask."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    daily_budget: float = Field(20.0, gt=0, description="epsilon per network key per UTC day")
    rate_limit_per_minute: int = Field(30, ge=1, description="searches per network key")


class NodePolicy(BaseModel):
    # Discovery-level tasks only (aggregate, disclosure-controlled); record-level access and
    # analysis need an explicit opt-in here.
    allowed_tasks: list[str] = Field(
        default_factory=lambda: ["node.info", "search.count", "catalogue.describe", "beacon.query"]
    )
    allowed_algorithms: list[str] = Field(default_factory=list)
    disclosure: DisclosurePolicy = Field(default_factory=DisclosurePolicy)
    learning: LearningPolicy = Field(default_factory=LearningPolicy)
    mediator: MediatorLimits = Field(default_factory=MediatorLimits)
    # Tier 3: the limits of federated analyses (`analysis.step` in allowed_tasks and the
    # algorithms in allowed_algorithms opt in; see oncofed.analysis.disclosure).
    analysis: AnalysisRules = Field(default_factory=AnalysisRules)

    def allows_task(self, kind: str) -> bool:
        return kind in self.allowed_tasks

    def mediator_disclosure(self) -> DisclosurePolicy:
        """The disclosure policy a mediator key's searches run under: the node's, with the
        mediator's own budget and rate limit."""
        return self.disclosure.model_copy(
            update={
                "daily_budget": self.mediator.daily_budget,
                "rate_limit_per_minute": self.mediator.rate_limit_per_minute,
            }
        )

    def summary(self) -> dict[str, object]:
        return {
            "allowed_tasks": sorted(self.allowed_tasks),
            "allowed_algorithms": sorted(self.allowed_algorithms),
            "min_count": self.disclosure.min_count,
            "rounding": self.disclosure.rounding,
            "epsilon": self.disclosure.epsilon,
            "daily_budget": self.disclosure.daily_budget,
            **(
                {"analysis": self.analysis.model_dump(mode="json")}
                if self.allowed_algorithms
                else {}
            ),
        }


def load_policy(path: Path) -> NodePolicy:
    if not path.exists():
        return NodePolicy()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return NodePolicy.model_validate(data)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"{path}: {problems}") from exc


def write_policy(path: Path, policy: NodePolicy) -> None:
    path.write_text(
        "# What this node agrees to do. Anything not listed is refused.\n"
        + tomli_w.dumps(policy.model_dump(mode="json")),
        encoding="utf-8",
    )
