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
