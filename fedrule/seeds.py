"""Named salts of every random stream, in one place.

A stream is ``np.random.SeedSequence([seed, *salts])``. Server-side streams take the scenario
seed and a salt; a device's streams take the seed, the device number and a stream id (see
``fedrule.fleet.device_rng``), so that what a device does never depends on which worker, node or
cohort simulates it.
"""

from __future__ import annotations

import numpy as np

# The fleet (with the scenario seed).
FLEET_USERS = 0xF1EE7  # which users become devices
FLEET_TIERS = 0x71E5  # which devices fall in which tier

# Server side (with the scenario seed).
TABLE_INIT = 0x7AB1E  # the initial item table
ROUND_SAMPLE = 0x5A  # the devices sampled in a round (with the round number)
LABEL_DEVICES = 0x1ABE1  # the labelling devices (users) and candidate configurations
VERIFY_DEVICES = 0x7E21F  # the verifying devices, where search.verify_users samples them
SEARCH = 0x5EA  # a searcher's stream (with the budget)
HASH_ITEMS = 0x4A54  # the hashing baseline's hash function (with the budget)
DP_NOISE = 0xD9015E  # the server's DP noise (with the round)
CLIP_NOISE = 0xC11B  # adaptive clipping: noise on the summed "norm <= C" bits (with the round)
COUNT_NOISE = 0xC0057  # DP noise on the popularity count
LABEL_NOISE = 0x1AB05E  # DP noise on label and validation sums (with the labelling stamp)
USER_INIT = 0x05E2  # every device's initial user vector (drawn by the engine, kept on devices)

# Device side (with the scenario seed and the device number).
STREAM_AVAILABILITY = 2
STREAM_TRAIN = 3
STREAM_PERSONALIZE = 4
STREAM_FAULTS = 5  # a device's crash and straggling in a phase (with the phase and round)
STREAM_COUNT = 6  # which of its items a device reports under the count's DP noise
MESSAGE_LOSS = 0x1055  # server side: which messages are lost (with the phase and stamp)

# Device systems (fedrule.systems): a device's own streams, SeedSequence([seed, device, salt]),
# so that a device's profile never depends on the fleet's size or order. The salts are far above
# any round number: SeedSequence([a, b, c]) would equal a server stream [seed, salt, round] if
# its device number were a server salt and c that round (and trailing zeros do not count).
SYSTEMS_PROFILE = 0x5157E75  # its speed, bandwidths and latency: one 64-bit word per quantity
SYSTEMS_AVAILABILITY = 0xA7A11AB  # its availability pattern: the phase of its daily window
# Device systems, server side: one stream for a whole asynchronous run (with the scenario seed).
ASYNC_SAMPLE = 0xA5C  # which online device takes each free slot of the asynchronous policy


def server_rng(seed: int, salt: int, *more: int) -> np.random.Generator:
    """A server-side random stream."""
    return np.random.default_rng(np.random.SeedSequence([seed, salt, *more]))
