"""A corpus of realistic cumulative programs, as MCTS executes them: every node runs the code of
its ancestors plus its own step, so a solution of k steps yields k programs (prefixes).

Solutions mix plain arithmetic, fractions, sympy (solve, expand, factor, integrate, simplify,
limits) and numpy (linear algebra, statistics), with seeded random numbers so that no two
programs are identical (a result cache would otherwise make the comparison meaningless).
"""

from __future__ import annotations

import random

TEMPLATES = {
    "arithmetic": [
        "# Step {i}: price of the items\nprice = {a} * {b}\n",
        "# Step {i}: add the delivery fee\ntotal = price + {c}\n",
        "# Step {i}: share the cost\nshare = total // {d}\nremainder = total % {d}\n",
        "# Step {i}: big powers stay exact\nbig = {a} ** 40 + {b} ** 35\n",
        "# Now print the final answer\nprint(share, remainder, big % 1000003)\n",
    ],
    "fractions": [
        "from fractions import Fraction\n# Step {i}: two fractions\nx = Fraction({a}, {b})\ny = Fraction({c}, {d})\n",
        "# Step {i}: combine them\nz = x * y + x / y - Fraction(1, {a})\n",
        "# Step {i}: a harmonic sum\nh = sum(Fraction(1, k) for k in range(1, {e}))\n",
        "# Now print the final answer\nprint(z, h)\n",
    ],
    "sympy_algebra": [
        "from sympy import symbols, Eq, solve, expand, factor, simplify, Rational, sqrt\n"
        "# Step {i}: the unknowns\nx, y = symbols('x y')\n",
        "# Step {i}: a quadratic\nroots = solve(Eq(x**2 - {s} * x + {p}, 0), x)\n",
        "# Step {i}: expand and factor\npoly = expand((x + {a}) ** 3 * (x - {b}))\nfactored = factor(poly)\n",
        "# Step {i}: a linear system\nsystem = solve([Eq({a} * x + {b} * y, {c}), Eq({d} * x - y, {e})], [x, y])\n",
        "# Step {i}: simplify a radical\nr = simplify(sqrt({sq}) / Rational({a}, {b}))\n",
        "# Now print the final answer\nprint(sorted(roots), factored, system[x], r)\n",
    ],
    "sympy_calculus": [
        "from sympy import symbols, integrate, diff, limit, sin, exp, oo, series\n# Step {i}: the variable\nt = symbols('t')\n",
        "# Step {i}: a polynomial integral\narea = integrate(t ** {a} - {b} * t + {c}, (t, 0, {d}))\n",
        "# Step {i}: a derivative\nslope = diff(t ** {b} * exp(t), t).subs(t, 0)\n",
        "# Step {i}: a limit\nlim = limit(sin({a} * t) / t, t, 0)\n",
        "# Now print the final answer\nprint(area, slope, lim)\n",
    ],
    "numpy": [
        "import numpy as np\n# Step {i}: a small linear system\nA = np.array([[{a}, {b}], [{c}, {d} + 1]], dtype=float)\nv = np.array([{e}, {a}], dtype=float)\n",
        "# Step {i}: solve it\nsol = np.linalg.solve(A, v)\n",
        "# Step {i}: statistics of a sample\nrng = np.random.default_rng({e})\nsample = rng.integers(0, 100, size=1000)\nmean, std = sample.mean(), sample.std()\n",
        "# Now print the final answer\nprint(np.round(sol, 6), round(float(mean), 3), round(float(std), 3))\n",
    ],
}


def solution(kind: str, rng: random.Random) -> list[str]:
    a, b, c, d, e = (rng.randint(2, 9) for _ in range(5))
    r1, r2 = rng.randint(-9, 9), rng.randint(-9, 9)
    values = dict(a=a, b=b, c=c, d=d, e=e + 10, s=r1 + r2, p=r1 * r2, sq=rng.choice([8, 12, 18, 50, 72, 98]))
    return [t.format(i=i + 1, **values) for i, t in enumerate(TEMPLATES[kind])]


def programs(n_solutions: int = 60, seed: int = 0) -> list[str]:
    """Every prefix program of `n_solutions` solutions, kinds in rotation."""
    rng = random.Random(seed)
    kinds = list(TEMPLATES)
    out = []
    for s in range(n_solutions):
        steps = solution(kinds[s % len(kinds)], rng)
        out += ["".join(steps[:k]) for k in range(1, len(steps) + 1)]
    return out
