"""Record Meta-World demonstrations from its scripted expert policies as .npz episodes (the
layout ``data_pipelines.demonstrations`` reads), for ACT-JEPA's ``--config.data.path``.

    MUJOCO_GL=osmesa python -m data_pipelines.metaworld_demos --tasks=reach-v3,push-v3 \\
        --episodes=50 --out=/data/metaworld_demos

Per task (its index in ``--tasks`` is the task id), episodes from the MT1 benchmark's training
goals, seeded; proprio = the observation's hand position and gripper opening (its first 4
values); image = the ``camera`` view at ``image_size`` pixels, flipped upright (MuJoCo's
offscreen frames come out upside down). Episodes the expert does not solve within
``max_steps`` are skipped; solved ones are cut at the first successful step. Rendering on a CPU
needs Debian ``libosmesa6`` and ``MUJOCO_GL=osmesa`` (set here when unset).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from data_pipelines.demonstrations import Episode, write_npz
from data_pipelines.errors import DataError


def record_task(task_index: int, name: str, episodes: int, *, image_size: int = 64,
                camera: str = "corner", max_steps: int = 500, seed: int = 0) -> list[Episode]:
    os.environ.setdefault("MUJOCO_GL", "osmesa")
    try:
        import metaworld
        from metaworld.policies import ENV_POLICY_MAP
    except (ImportError, AttributeError) as e:  # AttributeError: PyOpenGL without libOSMesa
        raise DataError(f"Meta-World cannot be imported ({e}); pip install -e '.[robotics]' and "
                        "apt-get install libosmesa6 (scripts/setup.sh does both)") from e
    if name not in ENV_POLICY_MAP:
        raise DataError(f"no scripted policy for Meta-World task {name!r}; tasks: "
                        f"{', '.join(sorted(ENV_POLICY_MAP))}")
    benchmark = metaworld.MT1(name, seed=seed)
    env = benchmark.train_classes[name](render_mode="rgb_array", camera_name=camera,
                                        width=image_size, height=image_size)
    policy = ENV_POLICY_MAP[name]()
    kept = []
    for i in range(len(benchmark.train_tasks) * 4):
        if len(kept) == episodes:
            break
        env.set_task(benchmark.train_tasks[i % len(benchmark.train_tasks)])
        obs, _ = env.reset(seed=seed * 100_000 + i)
        images, states, actions = [], [], []
        for _ in range(max_steps):
            images.append(np.ascontiguousarray(env.render()[::-1]))
            states.append(obs[:4].astype(np.float32))
            actions.append(np.clip(policy.get_action(obs), -1, 1).astype(np.float32))
            obs, _, _, _, info = env.step(actions[-1])
            if info["success"]:
                kept.append(Episode(np.stack(images), np.stack(states), np.stack(actions),
                                    task_index))
                break
    env.close()
    if len(kept) < episodes:
        raise DataError(f"the {name} expert solved only {len(kept)} of the episodes tried; "
                        f"raise --max_steps (now {max_steps})")
    return kept


def record(tasks: list[str], episodes: int, out: Path, **kw) -> Path:
    recorded = []
    for i, name in enumerate(tasks):
        recorded += record_task(i, name, episodes, **kw)
        print(f"{name}: {episodes} episodes, {sum(len(e) for e in recorded[-episodes:])} steps")
    return write_npz(recorded, out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default="reach-v3,push-v3")
    parser.add_argument("--episodes", type=int, default=50, help="per task")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--camera", default="corner")
    parser.add_argument("--max_steps", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    a = parser.parse_args(argv)
    record(a.tasks.split(","), a.episodes, a.out, image_size=a.image_size, camera=a.camera,
           max_steps=a.max_steps, seed=a.seed)


if __name__ == "__main__":
    main()
