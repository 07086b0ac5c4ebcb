"""A user program type-checked by test_typing.py (never run)."""
import sluice

def main() -> None:
    with sluice.Producer("127.0.0.1:7410", linger_ms=5) as p:
        meta = p.send("t", b"v", key=b"k", headers={"a": b"b"}).result(5)
        print(meta.offset + 1)
    with sluice.QueueConsumer("127.0.0.1:7410", "t", "g") as q:
        m = q.poll(1.0)
        if m is not None:
            v: bytes | None = m.value
            m.nack(delay=0.5)
            print(v, m.attempts + m.failures)
    try:
        sluice.Admin().topic("x")
    except sluice.UnknownTopicError as e:
        print(e.code, e.name)
    x: int = sluice.Admin().lag("g")[("t", 0)]
    print(x)

if __name__ == "__main__":
    main()
