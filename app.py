"""The Space's entry point: `python app.py` serves the chat; `gradio app.py` hot-reloads it."""

from kimichat.app import create_app

demo, launch_options = create_app()

if __name__ == "__main__":
    demo.launch(**launch_options)
