"""scenes: turn Recordings into animations (scene classes, panels, writers, CLI)."""
