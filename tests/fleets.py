"""A tiny federated scenario shared by the fleet tests."""


def fleet_scenario(**patch) -> dict:
    raw = {
        "name": "fleet",
        "data": {
            "source": "synthetic",
            "synthetic": {"users": 48, "items": 60, "interactions_per_user": 12},
        },
        "model": {"dim": 8, "blocks": 4, "groups": 3},
        "train": {"sampling": "sandwich", "lambda_div": 0.01, "negatives": 2},
        "eval": {"ks": [5, 10], "metric": "ndcg@10"},
        "estimator": {"configs": 20, "epochs": 30, "label_users": 24},
        "search": {"cycles": 10},
        "engine": {"kind": "federated", "devices_per_node": 8},
        "fleet": {
            "tiers": [
                {"name": "small", "share": 0.5, "budget": 0.4},
                {"name": "large", "share": 0.5, "budget": 1},
            ]
        },
        "federated": {"rounds": 2, "devices_per_round": 0.5, "local_lr": 0.2},
    }
    for key, value in patch.items():
        section, _, name = key.partition("__")
        raw.setdefault(section, {})[name] = value
    return raw


class PhaseLog:
    """A phase observer (``fedrule.algorithm.context.PhaseObserver``) that keeps every phase:
    its name, requests and result."""

    def __init__(self) -> None:
        self.phases: list[LoggedPhase] = []

    def on_phase_end(self, name, requests, replies, result) -> None:
        self.phases.append(LoggedPhase(name, list(requests), result))

    def named(self, prefix: str) -> list["LoggedPhase"]:
        """The phases whose name starts with ``prefix``, in order."""
        return [p for p in self.phases if p.name.startswith(prefix)]


class LoggedPhase:
    def __init__(self, name: str, requests: list, result) -> None:
        self.name, self.requests, self.result = name, requests, result

    @property
    def devices(self):
        """Every device the phase addressed (ascending within each request)."""
        import numpy as np

        return np.concatenate([r.devices for r in self.requests])

    @property
    def configs(self):
        """A labelling's configurations (every request carries the same)."""
        return self.requests[0].configs
