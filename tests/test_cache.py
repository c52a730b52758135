import threading

from autotua.cache import DigestCache


def test_memory_roundtrip():
    c = DigestCache()
    assert c.get("ns", "k") is None
    c.put("ns", "k", {"a": [1, 2]})
    assert c.get("ns", "k") == {"a": [1, 2]}
    assert c.get("other", "k") is None
    c.put_many("ns", {"x": 1, "y": 2})
    assert c.get_many("ns", ["x", "y", "z"]) == {"x": 1, "y": 2}


def test_file_is_shared_between_instances_and_threads(tmp_path):
    path = tmp_path / "sub" / "cache.sqlite"
    a = DigestCache(path)
    a.put("ns", "k", "v")
    b = DigestCache(path)
    assert b.get("ns", "k") == "v"
    errors = []

    def work(i):
        try:
            for j in range(50):
                b.put("ns", f"{i}-{j}", j)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(a.get_many("ns", [f"{i}-{j}" for i in range(4) for j in range(50)])) == 200
