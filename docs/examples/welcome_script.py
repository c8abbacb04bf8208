"""Quickstart: a synchronous script that runs a workflow to the end."""

from welcome import app, onboard

if __name__ == "__main__":
    user_id = app.run_sync(onboard, "alan@example.com", id="onboard-alan")
    print("result:", user_id)
    app.close_sync()
