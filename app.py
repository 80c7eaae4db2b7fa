"""The Space's entry point: `python app.py` serves the chat; `gradio app.py` hot-reloads it."""

from kimichat.app import create_demo, launch_options

demo = create_demo()

if __name__ == "__main__":
    demo.launch(**launch_options())
