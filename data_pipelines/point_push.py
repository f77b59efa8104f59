"""Point pushing: a pure-JAX 2-D manipulation task with a scripted expert, for fast imitation
learning tests and runs (ACT-JEPA's stand-in for Meta-World on a CPU).

A point "robot" (radius 0.05) moves in the square [-1, 1]^2 by at most 0.04 per step; its
proprioceptive state is its position and velocity. Two tasks, chosen by an integer task id:

* ``push`` (0): push a round block (radius 0.08) until its centre is within 0.06 of the goal;
* ``reach`` (1): move the robot itself to within 0.04 of the goal.

Contact is position-based: after the robot moves, an overlapping block is pushed out along the
line of centres, so the robot can only push, never pull. Everything is a pure function of a
state pytree, so episodes vmap over seeds and scan over steps. A top-down RGB image (goal blue,
block green, robot red) is the camera.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

TASKS = ("push", "reach")
ROBOT_RADIUS, BLOCK_RADIUS = 0.05, 0.08
CONTACT = ROBOT_RADIUS + BLOCK_RADIUS
STEP = 0.04                    # largest move per step (an action of norm 1 per axis)
PUSH_TOLERANCE, REACH_TOLERANCE = 0.06, 0.04
MAX_STEPS = 150
PROPRIO_DIM, ACTION_DIM = 4, 2


def reset(key, task):
    """The initial state of an episode of `task` (0 push, 1 reach) for this key."""
    k_block, k_angle, k_dist, k_robot = jax.random.split(key, 4)
    block = jax.random.uniform(k_block, (2,), minval=-0.5, maxval=0.5)
    angle = jax.random.uniform(k_angle, (), maxval=2 * jnp.pi)
    distance = jax.random.uniform(k_dist, (), minval=0.3, maxval=0.6)
    goal = jnp.clip(block + distance * jnp.stack([jnp.cos(angle), jnp.sin(angle)]), -0.85, 0.85)
    robot = jax.random.uniform(k_robot, (2,), minval=-0.85, maxval=0.85)
    return {"robot": _out_of_block(robot, block), "velocity": jnp.zeros(2), "block": block,
            "goal": goal, "task": jnp.asarray(task, jnp.int32)}


def _out_of_block(robot, block):
    """Where `robot` ends up if it overlaps the block: on its rim, along the line of centres."""
    offset = robot - block
    dist = jnp.linalg.norm(offset)
    direction = jnp.where(dist > 1e-6, offset / jnp.maximum(dist, 1e-6), jnp.array([1.0, 0.0]))
    return jnp.where(dist < CONTACT, block + direction * CONTACT, robot)


def step(state, action):
    """The next state after `action` (clipped to [-1, 1] per axis)."""
    move = STEP * jnp.clip(action, -1.0, 1.0)
    robot = jnp.clip(state["robot"] + move, -1.0, 1.0)
    offset = state["block"] - robot
    dist = jnp.linalg.norm(offset)
    pushed = robot + offset / jnp.maximum(dist, 1e-6) * CONTACT
    block = jnp.where((state["task"] == 0) & (dist < CONTACT),
                      jnp.clip(pushed, -1 + BLOCK_RADIUS, 1 - BLOCK_RADIUS), state["block"])
    return {**state, "robot": robot, "velocity": (robot - state["robot"]) / STEP, "block": block}


def proprio(state):
    """The robot's proprioceptive state: position and velocity (per step, in units of STEP)."""
    return jnp.concatenate([state["robot"], state["velocity"]])


def success(state):
    push = jnp.linalg.norm(state["block"] - state["goal"]) < PUSH_TOLERANCE
    reach = jnp.linalg.norm(state["robot"] - state["goal"]) < REACH_TOLERANCE
    return jnp.where(state["task"] == 0, push, reach)


def render(state, size: int = 32):
    """(size, size, 3) uint8 top-down image; row 0 is y = +1 (the top of the square)."""
    coords = (jnp.arange(size) + 0.5) / size * 2 - 1
    xs, ys = jnp.meshgrid(coords, -coords)
    pixel = 2.0 / size

    def disk(centre, radius):  # anti-aliased over about one pixel
        dist = jnp.sqrt((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2)
        return jnp.clip((radius - dist) / pixel + 0.5, 0.0, 1.0)[..., None]

    image = jnp.full((size, size, 3), 0.9)
    image = _paint(image, disk(state["goal"], 0.06), jnp.array([0.2, 0.3, 1.0]))
    block = disk(state["block"], BLOCK_RADIUS) * (state["task"] == 0)
    image = _paint(image, block, jnp.array([0.1, 0.7, 0.2]))
    image = _paint(image, disk(state["robot"], ROBOT_RADIUS), jnp.array([0.9, 0.1, 0.1]))
    return jnp.round(image * 255).astype(jnp.uint8)


def _paint(image, alpha, colour):
    return image * (1 - alpha) + colour * alpha


def expert(state):
    """The scripted expert's action: reach goes straight to the goal; push walks around the
    block to the point behind it (as seen from the goal), then pushes along the block-goal line,
    steering the contact point to keep the block on that line."""
    reach = _towards(state["robot"], state["goal"])
    block, robot = state["block"], state["robot"]
    to_goal = state["goal"] - block
    direction = to_goal / jnp.maximum(jnp.linalg.norm(to_goal), 1e-6)
    rel = robot - block
    along = rel @ direction                       # < 0: behind the block
    side = rel - along * direction
    side_dist = jnp.linalg.norm(side)
    normal = jnp.where(side_dist > 1e-6, side / jnp.maximum(side_dist, 1e-6),
                       jnp.array([-direction[1], direction[0]]))
    behind = block - direction * (CONTACT + 0.02)
    around = block + normal * (CONTACT + 0.06) - direction * CONTACT
    pushing = (along < -0.8 * CONTACT) & (side_dist < 0.03)
    waypoint = jnp.where((along < -0.5 * CONTACT)[None], behind, around)
    # Push through the block's centre (aim past it) and correct the sideways offset.
    push = jnp.clip(direction * jnp.clip(jnp.linalg.norm(to_goal) * 8, 0.3, 1.0) - side * 5,
                    -1.0, 1.0)
    act = jnp.where(pushing, push, _towards(robot, waypoint))
    return jnp.where(state["task"] == 0, act, reach)


def _towards(point, waypoint):
    return jnp.clip((waypoint - point) / STEP, -1.0, 1.0)


def expert_episodes(seeds, tasks, *, image_size: int = 32, max_steps: int = MAX_STEPS):
    """Roll the expert out from each (seed, task): host arrays image (N, T, H, W, 3) uint8,
    proprio (N, T, 4), action (N, T, 2), solved_at (N,) (the number of steps after which the
    task was solved, -1 if never), with T = max_steps."""
    def episode(seed, task):
        def one(state, _):
            action = expert(state)
            return step(state, action), (render(state, image_size), proprio(state), action,
                                         success(step(state, action)))
        _, (images, states, actions, done) = jax.lax.scan(
            one, reset(jax.random.key(seed), task), None, length=max_steps)
        solved_at = jnp.where(done.any(), jnp.argmax(done) + 1, -1)
        return images, states, actions, solved_at

    out = jax.jit(jax.vmap(episode))(jnp.asarray(seeds), jnp.asarray(tasks))
    images, states, actions, solved_at = (np.asarray(a) for a in out)
    return {"image": images, "proprio": states.astype(np.float32),
            "action": actions.astype(np.float32), "solved_at": solved_at}
