"""Guide: choosing the database and the app's options (nothing is opened here)."""

import perdure

app = perdure.App()  # $PERDURE_DATABASE_URL, or else the SQLite file ./perdure.db
relative = perdure.App("sqlite:///data/shop.db")  # data/shop.db under the current directory
absolute = perdure.App("sqlite:////var/lib/shop/shop.db")  # four slashes: an absolute path
faster = perdure.App("sqlite:///shop.db?synchronous=normal")  # see "SQLite durability"
scratch = perdure.App("memory://")  # this process only; nothing is kept

tuned = perdure.App(
    "sqlite:///shop.db",
    lease_ttl=30.0,  # seconds a worker's claim on a run lasts without a heartbeat
    poll_interval=0.5,  # seconds between a worker's looks for work from other processes
    sticky_cache=True,  # keep waiting runs in memory to resume them without replay
)

if __name__ == "__main__":
    for each in (relative, absolute, faster, scratch, tuned):
        print(each.url)
