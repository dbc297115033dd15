"""The lessons, one module each: ``run() -> Lesson`` drives a real engine run (see docs/mechanics.md
for the formulas they explain)."""
