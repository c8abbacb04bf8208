"""Quickstart: start and inspect runs from synchronous web views (Django, Flask)."""

from welcome import app, onboard


def sign_up(email: str) -> dict[str, str]:
    """A POST handler: start the workflow and answer at once."""
    handle = app.start_sync(onboard, email, id=f"onboard-{email}")
    return {"run_id": handle.id}


def sign_up_status(run_id: str) -> dict[str, str]:
    """A GET handler: report on the run."""
    info = app.handle_sync(run_id).info()
    return {"run_id": info.id, "status": info.status.value}


if __name__ == "__main__":
    answer = sign_up("edsger@example.com")
    print(answer)
    print(sign_up_status(answer["run_id"]))
    # Here the view waits for a worker process to finish the run.
    print("result:", app.handle_sync(answer["run_id"]).result(timeout=60))
    app.close_sync()
