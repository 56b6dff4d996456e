"""The embedded default: synthetic arithmetic word problems (`problems`) and the bootstrap teacher
that writes code-augmented steps with realistic mistakes (`teacher`). No GPU, no download."""
