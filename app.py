"""The Space's entry point: `python app.py` serves the chat; `gradio app.py` hot-reloads it."""

import os

# ZeroGPU (the only hardware a free account can host a Gradio Space on) stops an app at startup
# unless it registered a @spaces.GPU function, which `spaces` reports from its hook on
# demo.launch(). The hook needs `spaces` imported before Gradio (Gradio's own import of it runs
# half-loaded and fails quietly). The function is never bound to an event: anyone could call a
# bound one by its fn_index, and each call would ask the platform for a GPU the chat never uses.
# Its auto-wrap of every handler would break the app's async ones. Only ZeroGPU sets this variable.
if os.environ.get("SPACES_ZERO_GPU", "").lower() in {"1", "t", "true"}:
    import spaces

    spaces.disable_gradio_auto_wrap()

    @spaces.GPU
    def zerogpu_startup_check() -> None:
        """Registered for ZeroGPU's startup check; the chat runs on the CPU."""


from kimichat.app import create_app  # after `spaces`, as above

demo, launch_options = create_app()

if __name__ == "__main__":
    demo.launch(**launch_options)
