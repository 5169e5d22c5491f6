"""Launch the iLRM demo: ``python app.py [--host 0.0.0.0] [--port 7860] [--checkpoint DIR_OR_HUB_ID]``."""

from demo.app import main  # imports `spaces` (ZeroGPU) before anything touches CUDA

if __name__ == "__main__":
    main()
