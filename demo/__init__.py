"""The comet_py demo: static pages served by comet_server, plus ``demo.seed`` (run by scripts/demo.sh)."""
