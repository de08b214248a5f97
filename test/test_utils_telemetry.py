# Owner(s): ["module: tests"]

import asyncio
import inspect
import io
import json
import logging
import math
import multiprocessing
import os
import pickle
import tempfile
import threading
import unittest
import weakref
from unittest import mock

from hypothesis import given, settings, strategies as st

import torch
import torch.utils.error_callback as ec
import torch.utils.telemetry as tm
from torch.testing._internal.common_utils import (
    instantiate_parametrized_tests,
    IS_WINDOWS,
    parametrize,
    run_tests,
    TEST_CUDA,
    TestCase,
)
from torch.utils.data import DataLoader, Dataset
from torch.utils.telemetry import reset, snapshot, telemetry, to_json


KEYS = ["count", "device", "errors", "max_ms", "mean_ms", "min_ms", "p50_ms", "p95_ms", "peak_memory_bytes", "total_ms"]


@telemetry
def module_level_step(x):
    return x + 1


@telemetry(name="load")
def module_level_load(i):
    return i * 2


class FakeClock:
    """Replaces perf_counter_ns: each read advances by the next step (ns)."""

    def __init__(self, *durations_ns):
        self.now = 0
        self.reads = []
        for d in durations_ns:
            self.reads += [0, d]  # start read, end read

    def __call__(self):
        self.now += self.reads.pop(0)
        return self.now


class TelemetryTestCase(TestCase):
    def setUp(self):
        super().setUp()
        reset()
        self.addCleanup(reset)
        # Host clock even where an earlier test initialized an accelerator;
        # the accelerator path has its own classes below.
        patcher = mock.patch.object(tm, "_device_module", False)
        patcher.start()
        self.addCleanup(patcher.stop)
        # warm-up registrations survive reset(): none may leak into the next test
        patcher = mock.patch.dict(tm._warmup_left, clear=True)
        patcher.start()
        self.addCleanup(patcher.stop)


class TestForms(TelemetryTestCase):
    def test_bare_decorator_uses_qualname(self):
        @telemetry
        def step(x):
            return x * 2

        self.assertEqual(step(3), 6)
        self.assertEqual(step.__name__, "step")
        self.assertEqual(list(snapshot()), ["TestForms.test_bare_decorator_uses_qualname.<locals>.step"])

    @parametrize("form", ["keyword", "positional"])
    def test_named_decorator(self, form):
        deco = telemetry(name="fwd") if form == "keyword" else telemetry("fwd")

        @deco
        def forward(x):
            return x

        forward(1)
        forward(2)
        self.assertEqual(snapshot()["fwd"]["count"], 2)

    def test_with_block(self):
        with telemetry("block") as t:
            self.assertEqual(repr(t), "telemetry('block')")
        with telemetry("block"):
            pass
        self.assertEqual(snapshot()["block"]["count"], 2)

    def test_block_object_reusable_and_reentrant(self):
        block = telemetry("b")
        with block:
            pass
        with mock.patch.object(tm, "_perf_counter_ns", FakeClock(1_000, 3_000)):
            with block:  # nested in itself: each entry is timed on its own
                with block:
                    pass
        stats = snapshot()["b"]
        self.assertEqual(stats["count"], 3)
        self.assertEqual(tm._open_blocks.get(), ())

    def test_exit_without_enter(self):
        with self.assertRaises(RuntimeError) as cm:
            telemetry("b").__exit__(None, None, None)
        self.assertExpectedInline(
            str(cm.exception), """telemetry('b'): __exit__ without a matching __enter__ in this thread or task"""
        )

    def test_shared_block_object_across_threads(self):
        block = telemetry("shared")
        barrier = threading.Barrier(4)

        def work():
            for _ in range(200):
                with block:
                    barrier.wait(timeout=60) if _ == 0 else None

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stats = snapshot()["shared"]
        self.assertEqual((stats["count"], stats["errors"]), (800, 0))
        self.assertLess(stats["max_ms"], 60_000)  # no entry lost its start (would read as ~now since 0)

    def test_snapshot_shape_and_json(self):
        module_level_step(torch.ones(2))
        stats = snapshot()
        self.assertEqual(sorted(stats["module_level_step"]), KEYS)
        entry = stats["module_level_step"]
        self.assertEqual((entry["count"], entry["errors"], entry["device"], entry["peak_memory_bytes"]), (1, 0, "cpu", None))
        self.assertEqual(json.loads(to_json()), stats)
        self.assertEqual(json.loads(to_json(indent=2)), stats)

    def test_reset(self):
        module_level_step(1)
        reset()
        self.assertEqual(snapshot(), {})

    def test_reset_one_name(self):
        module_level_step(1)
        with telemetry("other"):
            pass
        reset("module_level_step")
        self.assertEqual(list(snapshot()), ["other"])
        reset("never recorded")
        with self.assertRaises(TypeError) as cm:
            reset(3)
        self.assertExpectedInline(str(cm.exception), """reset(): name must be a str or None (every name), but got 3""")

    def test_warmup_leaves_first_calls_out(self):
        clock = FakeClock(*[1000 * (i + 1) for i in range(6)])
        with mock.patch.object(tm, "_perf_counter_ns", clock):

            @telemetry(warmup=2)
            def compiled():
                pass

            for _ in range(4):
                compiled()
            for _ in range(2):  # a block object created per iteration warms up once
                with telemetry("eval", warmup=1):
                    pass
        figures = next(v for k, v in snapshot().items() if k.endswith("<locals>.compiled"))
        self.assertEqual((figures["count"], figures["min_ms"], figures["max_ms"]), (2, 0.003, 0.004))
        self.assertEqual((snapshot()["eval"]["count"], snapshot()["eval"]["min_ms"]), (1, 0.006))
        reset()  # warm-up is not re-armed
        with telemetry("eval", warmup=1):
            pass
        self.assertEqual(snapshot()["eval"]["count"], 1)

    def test_warmup_only_name_has_no_entry(self):
        # A name whose calls so far were all warm-up calls has no figures yet: no invented zeros.
        for _ in range(3):
            with telemetry("wu_only", warmup=10):
                pass
        self.assertNotIn("wu_only", snapshot())
        self.assertNotIn("wu_only", json.loads(to_json()))
        import torch.utils._telemetry_job as job
        from torch.utils.dashboard import show

        self.assertNotIn("wu_only", job._exposition())  # /metrics
        self.assertNotIn("wu_only", job._job_snapshot())  # /api/stats and the page
        out = io.StringIO()
        show(out)
        self.assertNotIn("wu_only", out.getvalue())

    def test_warmup_errors_left_out_but_reported(self):
        seen = []

        @telemetry(name="warm_fail", warmup=1)
        def fail():
            raise KeyError("x")

        with ec.error_callback(lambda exc, context: seen.append(type(exc))):
            for _ in range(2):
                with self.assertRaises(KeyError):
                    fail()
        self.assertEqual((snapshot()["warm_fail"]["count"], snapshot()["warm_fail"]["errors"]), (1, 1))
        self.assertEqual(seen, [KeyError, KeyError])

    def test_warmup_bad_values(self):
        with self.assertRaises(TypeError) as cm:
            telemetry("a", warmup=1.5)
        self.assertExpectedInline(str(cm.exception), """telemetry(): warmup must be an int (calls to leave out), but got 1.5""")
        with self.assertRaises(ValueError) as cm:
            telemetry("a", warmup=-1)
        self.assertExpectedInline(str(cm.exception), """telemetry(): warmup must be >= 0 (calls to leave out), but got -1""")
        for bad in (None, False, 0.0):  # also on the shared-block fast path of telemetry("name")
            with self.assertRaises(TypeError) as cm:
                telemetry("a", warmup=bad)
            self.assertIn(f"warmup must be an int (calls to leave out), but got {bad!r}", str(cm.exception))
        with self.assertRaises(TypeError) as cm:
            telemetry(warmup=True)
        self.assertExpectedInline(str(cm.exception), """telemetry(): warmup must be an int (calls to leave out), but got True""")
        with self.assertRaises(TypeError) as cm:
            telemetry(warmup=2)(5)
        self.assertExpectedInline(str(cm.exception), """telemetry(warmup=2) decorates a callable, but got 5""")

    def test_bad_arguments(self):
        with self.assertRaises(TypeError) as cm:
            telemetry(42)
        self.assertExpectedInline(str(cm.exception), """telemetry(): expected a callable or a name (str), but got 42""")
        with self.assertRaises(TypeError) as cm:
            telemetry()
        self.assertExpectedInline(str(cm.exception), """telemetry(): expected a function to time or a name, but got neither""")
        with self.assertRaises(ValueError) as cm:
            telemetry("")
        self.assertExpectedInline(str(cm.exception), """telemetry(): name must be a non-empty string, but got ''""")
        with self.assertRaises(TypeError) as cm:
            telemetry(name=b"x")
        self.assertExpectedInline(str(cm.exception), """telemetry(): name must be a str, but got b'x'""")
        with self.assertRaises(TypeError) as cm:
            telemetry("a", name="b")
        self.assertExpectedInline(
            str(cm.exception), """telemetry(): give the name once, positionally or as name=, but got 'a' and 'b'"""
        )
        with self.assertRaises(TypeError) as cm:
            telemetry("a")(3)
        self.assertExpectedInline(str(cm.exception), """telemetry('a') decorates a callable, but got 3""")

    def test_bad_snapshot_and_json_arguments(self):
        with self.assertRaises(TypeError) as cm:
            snapshot(all_ranks="yes")
        self.assertExpectedInline(str(cm.exception), """snapshot(): all_ranks must be a bool, but got 'yes'""")
        with self.assertRaises(TypeError) as cm:
            to_json(indent="  ")
        self.assertExpectedInline(str(cm.exception), """to_json(): indent must be an int or None, but got '  '""")
        with self.assertRaises(ValueError) as cm:
            to_json(indent=-1)
        self.assertExpectedInline(str(cm.exception), """to_json(): indent must be 0 to 1024 (spaces per level) or None, but got -1""")  # noqa: B950
        with self.assertRaisesRegex(ValueError, r"^to_json\(\): indent must be 0 to 1024 .* but got 9223372036854775808$"):
            to_json(indent=2**63)  # json.dumps had raised an OverflowError that did not name to_json
        with self.assertRaisesRegex(ValueError, r"^to_json\(\): indent must be 0 to 1024 .* but got an integer of 1329 bits$"):
            to_json(indent=10**400)
        with self.assertRaisesRegex(TypeError, r"^to_json\(\): all_ranks must be a bool, but got 1$"):
            to_json(all_ranks=1)
        with self.assertRaises(TypeError) as cm:
            snapshot(workers=1)
        self.assertExpectedInline(str(cm.exception), """snapshot(): workers must be a bool, but got 1""")

    def test_module_level_functions_pickle(self):
        self.assertIs(pickle.loads(pickle.dumps(module_level_step)), module_level_step)
        self.assertIs(pickle.loads(pickle.dumps(module_level_load)), module_level_load)


class TestFigures(TelemetryTestCase):
    def test_exact_count_total_min_max_mean(self):
        clock = FakeClock(1_000_000, 3_000_000, 2_000_000)  # 1, 3, 2 ms
        with mock.patch.object(tm, "_perf_counter_ns", clock):
            for _ in range(3):
                module_level_step(0)
        s = snapshot()["module_level_step"]
        self.assertEqual((s["count"], s["errors"]), (3, 0))
        self.assertEqual((s["total_ms"], s["mean_ms"], s["min_ms"], s["max_ms"]), (6.0, 2.0, 1.0, 3.0))
        self.assertLessEqual(abs(s["p50_ms"] - 2.0), 2.0 / 32)
        self.assertLessEqual(abs(s["p95_ms"] - 3.0), 3.0 / 32)

    def test_block_uses_host_clock(self):
        with mock.patch.object(tm, "_perf_counter_ns", FakeClock(5_000)):
            with telemetry("b"):
                pass
        self.assertEqual(snapshot()["b"]["total_ms"], 0.005)

    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.integers(min_value=0, max_value=10**12), min_size=1, max_size=300))
    def test_quantiles_within_documented_error(self, durations):
        stat = tm._Stat("cpu")
        stat.buffer.extend(durations)
        stat.fold()
        ordered = sorted(durations)
        for q in (0.5, 0.95):
            exact = ordered[max(1, math.ceil(q * len(ordered))) - 1]
            self.assertLessEqual(abs(stat.quantile_ns(q) - exact), exact / 32 + 0.5, (q, exact))
        self.assertEqual((stat.min_ns, stat.max_ns, stat.total_ns), (ordered[0], ordered[-1], sum(durations)))

    @settings(max_examples=50, deadline=None)
    @given(st.lists(st.one_of(st.integers(0, 40), st.integers(0, 10**12), st.integers(0, 40).map(lambda k: 2**k)), min_size=1))
    def test_fold_matches_per_value_buckets(self, durations):
        stat = tm._Stat("cpu")
        stat.buffer.extend(durations)
        stat.fold()
        expected = [0] * len(stat.buckets)
        for ns in durations:
            if ns < tm._LINEAR:
                expected[ns] += 1
            else:
                shift = ns.bit_length() - tm._SUB_BITS - 1
                expected[(shift << tm._SUB_BITS) + (ns >> shift)] += 1
        self.assertEqual(stat.buckets, expected)
        self.assertEqual(
            (stat.count, stat.total_ns, stat.min_ns, stat.max_ns),
            (len(durations), sum(durations), min(durations), max(durations)),
        )

    def test_block_objects_shared_per_name(self):
        self.assertIs(telemetry("shared"), telemetry("shared"))
        self.assertIsNot(telemetry("shared_warm", warmup=1), telemetry("shared_warm"))
        with mock.patch.object(tm, "_MAX_SHARED_BLOCKS", 0):
            self.assertIsNot(telemetry("not cached"), telemetry("not cached"))

    def test_memory_is_bounded(self):
        durations = range(0, 10**9, 79193)
        clock = FakeClock(*durations)
        with mock.patch.object(tm, "_perf_counter_ns", clock):
            for _ in durations:
                module_level_step(0)
                stat = tm._stats["module_level_step"]
                self.assertLess(len(stat.buffer), tm._FLUSH_EVERY)
        self.assertEqual(len(stat.buckets), 1024)
        s = snapshot()["module_level_step"]
        self.assertEqual((s["count"], s["max_ms"]), (len(durations), durations[-1] / 1e6))

    def test_thread_safe_counts(self):
        def work():
            for _ in range(500):
                module_level_step(1)
                with telemetry("block"):
                    pass

        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stats = snapshot()
        self.assertEqual(stats["module_level_step"]["count"], 4000)
        self.assertEqual(stats["block"]["count"], 4000)


class TestFailures(TelemetryTestCase):
    def test_errors_counted_reported_logged_and_reraised(self):
        err = ValueError("bad batch")

        @telemetry(name="step")
        def step():
            raise err

        seen = []
        with ec.error_callback(lambda exc, info: seen.append((exc, info))):
            with self.assertLogs("torch.utils.telemetry", logging.DEBUG) as logs:
                with self.assertRaises(ValueError) as cm:
                    step()
        self.assertIs(cm.exception, err)
        self.assertEqual(seen, [(err, {"source": "torch.utils.telemetry", "name": "step"})])
        self.assertIn("step raised ValueError", logs.output[0])
        s = snapshot()["step"]
        self.assertEqual((s["count"], s["errors"]), (1, 1))

    def test_block_errors(self):
        seen = []
        with ec.error_callback(lambda exc, info: seen.append(info["name"])):
            with self.assertRaises(KeyError):
                with telemetry("blk"):
                    raise KeyError("k")
        self.assertEqual(seen, ["blk"])
        self.assertEqual(snapshot()["blk"]["errors"], 1)

    def test_one_rule_for_what_is_an_error_in_every_form(self):
        # A cancelled task, a closed generator and sys.exit() with a success status end a call without it
        # failing; any other exception (an interrupt, sys.exit(1)) is an error: decorated functions and
        # blocks alike (the decorator had counted every exception).
        cases = [
            (asyncio.CancelledError(), 0),
            (GeneratorExit(), 0),
            (SystemExit(), 0),
            (SystemExit(0), 0),
            (SystemExit(1), 1),
            (SystemExit("failed"), 1),
            (KeyboardInterrupt(), 1),
        ]
        for i, (exc, errors) in enumerate(cases):
            with self.subTest(exc=repr(exc)):

                def raising(exc=exc):
                    raise exc

                seen = []
                with ec.error_callback(lambda e, info: seen.append(e), exceptions=BaseException):
                    with self.assertRaises(type(exc)):
                        telemetry(raising, name=f"fn{i}")()
                    with self.assertRaises(type(exc)):
                        with telemetry(f"blk{i}"):
                            raise exc
                figures = snapshot()
                self.assertEqual((figures[f"fn{i}"]["count"], figures[f"fn{i}"]["errors"]), (1, errors))
                self.assertEqual((figures[f"blk{i}"]["count"], figures[f"blk{i}"]["errors"]), (1, errors))
                self.assertEqual(len(seen), 2 * errors)


class TestProfiler(TelemetryTestCase):
    def test_range_only_while_profiling(self):
        with mock.patch("torch.autograd.profiler.record_function") as rf:
            module_level_step(1)
            with telemetry("b"):
                pass
        rf.assert_not_called()
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            module_level_step(torch.ones(1))
            with telemetry("my_block"):
                torch.ones(1).sum()
        names = {e.name for e in prof.events()}
        self.assertIn("module_level_step", names)
        self.assertIn("my_block", names)
        self.assertEqual(snapshot()["module_level_step"]["count"], 2)


class TestCoroutinesAndGenerators(TelemetryTestCase):
    def test_coroutine_function_times_the_awaited_call(self):
        @telemetry(name="fetch")
        async def fetch(x):
            await asyncio.sleep(0)
            return x * 2

        self.assertTrue(inspect.iscoroutinefunction(fetch))
        with mock.patch.object(tm, "_perf_counter_ns", FakeClock(5_000_000)):
            self.assertEqual(asyncio.run(fetch(21)), 42)
        s = snapshot()["fetch"]
        self.assertEqual((s["count"], s["errors"], s["total_ms"]), (1, 0, 5.0))

    def test_coroutine_errors_counted_cancellation_is_not(self):
        @telemetry(name="bad")
        async def bad():
            await asyncio.sleep(0)
            raise ValueError("boom")

        @telemetry(name="slow")
        async def slow():
            await asyncio.sleep(3600)

        async def main():
            task = asyncio.ensure_future(slow())
            await asyncio.sleep(0)
            task.cancel()
            with self.assertRaises(asyncio.CancelledError):
                await task
            with self.assertRaises(ValueError):
                await bad()

        seen = []
        with ec.error_callback(lambda exc, info: seen.append(info["name"])):
            asyncio.run(main())
        stats = snapshot()
        self.assertEqual((stats["bad"]["count"], stats["bad"]["errors"]), (1, 1))
        self.assertEqual((stats["slow"]["count"], stats["slow"]["errors"]), (1, 0))
        self.assertEqual(seen, ["bad"])

    def test_async_with_block_and_interleaved_tasks(self):
        # Two tasks interleave awaits inside blocks of one shared object and of their own names:
        # each block times its own task's span.
        shared = telemetry("shared")
        order = []

        async def task(name, first, second):
            async with shared:
                async with telemetry(name):
                    order.append(name)
                    await first.wait()
                    second.set()
                    await asyncio.sleep(0)
            order.append(name + " done")

        async def main():
            a, b = asyncio.Event(), asyncio.Event()
            b_started = asyncio.Event()
            # A waits for b, B sets it and waits for a: their blocks overlap, exits interleave.
            await asyncio.wait_for(asyncio.gather(task("A", b, a), task("B", b_started, b), _set_later(b_started)), 60)

        async def _set_later(event):
            await asyncio.sleep(0)
            event.set()

        asyncio.run(main())
        stats = snapshot()
        self.assertEqual((stats["shared"]["count"], stats["A"]["count"], stats["B"]["count"]), (2, 1, 1))
        self.assertEqual(sum(s["errors"] for s in stats.values()), 0)
        self.assertEqual(tm._open_blocks.get(), ())

    def test_interleaved_tasks_get_their_own_durations(self):
        # A enters at t=0, B at t=1; A exits at t=3, B at t=7 (µs): a per-thread stack would swap them.
        times = iter([0, 1_000, 3_000, 7_000])

        async def task(name, entered, leave):
            async with telemetry(name):
                entered.set()
                await leave.wait()

        async def main():
            a_in, b_in, a_out, b_out = (asyncio.Event() for _ in range(4))
            ta = asyncio.ensure_future(task("A", a_in, a_out))
            await a_in.wait()
            tb = asyncio.ensure_future(task("B", b_in, b_out))
            await b_in.wait()
            a_out.set()
            await ta
            b_out.set()
            await tb

        with mock.patch.object(tm, "_perf_counter_ns", lambda: next(times)):
            asyncio.run(asyncio.wait_for(main(), 60))  # a task that fails early must not hang the test
        stats = snapshot()
        self.assertEqual((stats["A"]["total_ms"], stats["B"]["total_ms"]), (0.003, 0.006))

    def test_interleaved_decorated_coroutines(self):
        times = iter([0, 1_000, 3_000, 7_000])

        @telemetry(name="job")
        async def job(entered, leave):
            entered.set()
            await leave.wait()

        async def main():
            a_in, b_in, a_out, b_out = (asyncio.Event() for _ in range(4))
            ta = asyncio.ensure_future(job(a_in, a_out))
            await a_in.wait()
            tb = asyncio.ensure_future(job(b_in, b_out))
            await b_in.wait()
            a_out.set()
            await ta
            b_out.set()
            await tb

        with mock.patch.object(tm, "_perf_counter_ns", lambda: next(times)):
            asyncio.run(asyncio.wait_for(main(), 60))  # a task that fails early must not hang the test
        s = snapshot()["job"]
        self.assertEqual((s["count"], s["min_ms"], s["max_ms"]), (2, 0.003, 0.006))

    def test_generator_one_call_from_first_next_to_exhaustion(self):
        @telemetry(name="batches")
        def batches(n):
            yield from range(n)
            return "done"

        self.assertTrue(inspect.isgeneratorfunction(batches))
        gen = batches(3)
        self.assertNotIn("batches", snapshot())  # not started: nothing timed
        with mock.patch.object(tm, "_perf_counter_ns", FakeClock(4_000_000)):
            self.assertEqual(list(gen), [0, 1, 2])
        s = snapshot()["batches"]
        self.assertEqual((s["count"], s["errors"], s["total_ms"]), (1, 0, 4.0))
        gen = batches(1)
        next(gen)
        with self.assertRaises(StopIteration) as cm:
            next(gen)
        self.assertEqual(cm.exception.value, "done")

    def test_generator_close_and_errors(self):
        @telemetry(name="gen")
        def gen():
            yield 1
            yield 2
            raise KeyError("inside")

        g = gen()
        next(g)
        g.close()  # closed early: a call, not an error
        self.assertEqual((snapshot()["gen"]["count"], snapshot()["gen"]["errors"]), (1, 0))
        with self.assertRaises(KeyError):
            list(gen())
        g = gen()
        next(g)
        with self.assertRaises(ValueError):
            g.throw(ValueError("from the consumer"))  # not handled inside: propagates out of the generator
        s = snapshot()["gen"]
        self.assertEqual((s["count"], s["errors"]), (3, 2))

    def test_generator_send_passes_through(self):
        @telemetry(name="echo")
        def echo():
            received = yield "ready"
            while received is not None:
                received = yield received * 2

        g = echo()
        self.assertEqual(next(g), "ready")
        self.assertEqual(g.send(5), 10)
        with self.assertRaises(StopIteration):
            g.send(None)
        self.assertEqual(snapshot()["echo"]["count"], 1)

    def test_async_generator(self):
        @telemetry(name="stream")
        async def stream(n):
            for i in range(n):
                await asyncio.sleep(0)
                yield i

        @telemetry(name="broken")
        async def broken():
            yield 1
            raise OSError("disk")

        @telemetry(name="echo")
        async def echo():
            received = yield "ready"
            while received is not None:
                try:
                    received = yield received * 2
                except KeyError:
                    received = yield "caught"

        self.assertTrue(inspect.isasyncgenfunction(stream))

        async def main():
            self.assertEqual([i async for i in stream(3)], [0, 1, 2])
            with self.assertRaises(OSError):
                async for _ in broken():
                    pass
            agen = stream(5)
            await agen.__anext__()
            await agen.aclose()  # closed early: a call, not an error
            e = echo()
            self.assertEqual(await e.__anext__(), "ready")
            self.assertEqual(await e.asend(4), 8)
            self.assertEqual(await e.athrow(KeyError("k")), "caught")
            with self.assertRaises(StopAsyncIteration):
                await e.asend(None)

        asyncio.run(main())
        stats = snapshot()
        self.assertEqual((stats["stream"]["count"], stats["stream"]["errors"]), (2, 0))
        self.assertEqual((stats["broken"]["count"], stats["broken"]["errors"]), (1, 1))
        self.assertEqual((stats["echo"]["count"], stats["echo"]["errors"]), (1, 0))

    def test_block_around_yield_in_generator(self):
        def gen():
            with telemetry("inside"):
                yield 1
                yield 2

        self.assertEqual(list(gen()), [1, 2])
        g = gen()
        next(g)
        g.close()
        s = snapshot()["inside"]
        self.assertEqual((s["count"], s["errors"]), (2, 0))


@instantiate_parametrized_tests
class TestCompile(TelemetryTestCase):
    @parametrize("backend", ["eager", "aot_eager"])
    def test_results_equal_eager(self, backend):
        torch._dynamo.reset()

        @telemetry(name="inner")
        def inner(x):
            return x.sin() * 2

        def outer(x):
            return inner(x) + 1

        x = torch.randn(8)
        self.assertEqual(torch.compile(outer, backend=backend)(x), outer(x))
        self.assertEqual(torch.compile(inner, backend=backend)(x), inner(x))
        # Host-side timing: every call is counted, compiled or not.
        self.assertEqual(snapshot()["inner"]["count"], 4)

    def test_fullgraph_says_to_decorate_outside(self):
        torch._dynamo.reset()

        @telemetry(name="inner")
        def inner(x):
            return x.sin()

        def outer(x):
            return inner(x) + 1

        with self.assertRaisesRegex(Exception, "apply @telemetry .*outside the torch.compile'd function"):
            torch.compile(outer, backend="eager", fullgraph=True)(torch.randn(4))

    def test_fullgraph_block_says_to_time_outside(self):
        torch._dynamo.reset()

        def fn(x):
            with telemetry("blk_full"):
                return x.sin()

        with self.assertRaisesRegex(Exception, "apply @telemetry .*outside the torch.compile'd function"):
            torch.compile(fn, backend="eager", fullgraph=True)(torch.randn(4))

    @parametrize("backend", ["eager", "aot_eager"])
    def test_block_in_compiled_function(self, backend):
        torch._dynamo.reset()

        def fn(x):
            with telemetry("blk"):
                y = x.cos()
            return y * 3

        x = torch.randn(8)
        self.assertEqual(torch.compile(fn, backend=backend)(x), fn(x))
        self.assertEqual(snapshot()["blk"]["count"], 2)


def _fork_child(queue):
    module_level_step(1)
    queue.put(snapshot())


class _Items(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        module_level_load(i)
        return torch.tensor([torch.utils.data.get_worker_info().id, snapshot()["load"]["count"]])


@unittest.skipIf(IS_WINDOWS, "fork is POSIX-only")
class TestProcesses(TelemetryTestCase):
    def test_fork_child_gets_fresh_state_and_lock(self):
        for _ in range(5):
            module_level_step(1)
        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()
        with tm._lock:  # as if another thread held it at fork time
            child = ctx.Process(target=_fork_child, args=(queue,))
            child.start()
        try:
            child_stats = queue.get(timeout=60)
        finally:
            child.join(timeout=60)
            if child.is_alive():
                child.kill()
        self.assertEqual(child.exitcode, 0)
        self.assertEqual(child_stats["module_level_step"]["count"], 1)
        self.assertEqual(snapshot()["module_level_step"]["count"], 5)

    def test_dataloader_workers(self):
        for _ in range(3):
            module_level_load(0)
        loader = DataLoader(_Items(), batch_size=None, num_workers=2, multiprocessing_context="fork", timeout=60)
        rows = [row.tolist() for row in loader]
        per_worker = {}
        for worker, count in rows:
            per_worker.setdefault(worker, []).append(count)
        # Each worker counts only its own calls: 1, 2, 3, 4 (not the parent's 3).
        self.assertEqual(sorted(per_worker), [0, 1])
        for counts in per_worker.values():
            self.assertEqual(counts, list(range(1, len(counts) + 1)))
        # ... and the parent's snapshot merges them in once the workers have exited.
        del loader
        self.assertEqual(snapshot()["load"]["count"], 3 + 8)


def _rank_main(rank, init_file, queue):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        for _ in range(rank + 1):
            module_level_step(rank)
        queue.put((rank, snapshot(all_ranks=True)))
        dist.barrier()
    finally:
        dist.destroy_process_group()


@unittest.skipIf(IS_WINDOWS or not torch.distributed.is_available(), "needs torch.distributed with gloo and fork")
class TestDistributed(TelemetryTestCase):
    def test_requires_initialized_process_group(self):
        with self.assertRaisesRegex(RuntimeError, "needs torch.distributed to be initialized"):
            snapshot(all_ranks=True)

    def test_gather_two_ranks(self):
        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()
        with tempfile.TemporaryDirectory() as tmp:
            init_file = os.path.join(tmp, "init")
            procs = [ctx.Process(target=_rank_main, args=(rank, init_file, queue)) for rank in range(2)]
            for p in procs:
                p.start()
            try:
                results = dict(queue.get(timeout=120) for _ in procs)
            finally:
                for p in procs:
                    p.join(timeout=60)
                    if p.is_alive():
                        p.kill()
        self.assertEqual([p.exitcode for p in procs], [0, 0])
        self.assertEqual(results[0], results[1])
        step = results[0]["module_level_step"]
        self.assertEqual(step["count"], 3)
        self.assertEqual(sorted(step["ranks"]), [0, 1])
        self.assertEqual(step["ranks"][0]["count"], 1)
        self.assertEqual(step["ranks"][1]["count"], 2)
        self.assertIn(step["slowest_rank"], (0, 1))


class FakeEvent:
    """Stands in for torch.Event: records on a stream, checks which device guard is entered when it is
    waited for, read or destroyed, and counts synchronize calls."""

    created = []
    syncs = 0
    guard = []  # the device indices of the entered fake device guards, innermost last
    outside_guard = []  # what was done to an event of device k while the guard of k was not entered
    fail = set()  # streams whose pairs cannot be resolved

    def __init__(self, enable_timing=False):
        self.done = False
        self.stream = None
        FakeEvent.created.append(weakref.ref(self))  # weak: the test must not keep events alive

    def _check(self, what):
        if self.stream is not None and (not FakeEvent.guard or FakeEvent.guard[-1] != self.stream.device_index):
            FakeEvent.outside_guard.append(what)

    def record(self, stream=None):
        self.stream = stream

    def query(self):
        self._check("query")
        return self.done

    def synchronize(self):
        self._check("synchronize")
        FakeEvent.syncs += 1
        self.done = True

    def elapsed_time(self, end):
        self._check("elapsed_time")
        if self.stream is not end.stream or self.stream in FakeEvent.fail:
            raise RuntimeError("Both events must be recorded on the same device and stream")
        return 2.0  # ms

    def __del__(self):
        if self.stream is not None and self.stream.device_index is not None:
            self._check("destroyed")


class FakeStream:
    def __init__(self, device_index):
        self.device_index = device_index


class FakeGuard:
    """Stands in for torch.accelerator.device_index."""

    def __init__(self, index):
        self.index = index

    def __enter__(self):
        FakeEvent.guard.append(self.index)

    def __exit__(self, *exc):
        FakeEvent.guard.pop()


class TestAcceleratorPath(TelemetryTestCase):
    """The accelerator code path on any machine, with a fake device module, events, streams and guard."""

    def setUp(self):
        super().setUp()
        FakeEvent.created, FakeEvent.syncs, FakeEvent.guard, FakeEvent.outside_guard = [], 0, [], []
        FakeEvent.fail = set()
        self.capturing = False
        self.device = 1
        self.streams = {i: FakeStream(i) for i in range(3)}
        self.fake_module = mock.Mock(
            is_initialized=mock.Mock(return_value=True),
            is_current_stream_capturing=mock.Mock(side_effect=lambda: self.capturing),
        )
        self.peaks = mock.Mock(side_effect=lambda index: 100 * (index + 1))
        for patcher in (
            mock.patch.object(tm, "_device_module", self.fake_module),
            mock.patch.object(tm, "_backlog_logged", False),
            mock.patch.object(tm, "_device_guard", FakeGuard),
            mock.patch.object(torch, "Event", FakeEvent),
            mock.patch.object(torch.accelerator, "current_accelerator", return_value=torch.device("cuda")),
            mock.patch.object(torch.accelerator, "current_device_index", side_effect=lambda: self.device),
            mock.patch.object(torch.accelerator, "current_stream", side_effect=lambda index: self.streams[index]),
            mock.patch.object(tm, "_peak_allocated", self.peaks),
        ):
            patcher.start()
            self.addCleanup(patcher.stop)

    def test_events_resolved_lazily_at_snapshot(self):
        module_level_step(1)
        module_level_step(2)
        with telemetry("blk"):
            pass
        self.assertEqual(FakeEvent.syncs, 0)  # nothing waited for in the hot path
        self.assertEqual(len(FakeEvent.created), 6)
        stats = snapshot()
        self.assertEqual(FakeEvent.syncs, 3)
        step = stats["module_level_step"]
        self.assertEqual((step["count"], step["total_ms"], step["device"], step["peak_memory_bytes"]), (2, 4.0, "cuda:1", 200))
        self.assertEqual(stats["blk"]["peak_memory_bytes"], 200)

    def test_peak_read_at_snapshot_once_per_device_not_per_call(self):
        # max_memory_allocated builds the allocator's whole statistics dict: never in the hot path.
        for _ in range(50):
            module_level_step(1)
            with telemetry("blk"):
                pass
        self.peaks.assert_not_called()
        self.assertEqual(snapshot()["module_level_step"]["peak_memory_bytes"], 200)
        self.peaks.assert_called_once_with(1)
        snapshot()  # no call since: not sampled again
        self.assertEqual(self.peaks.call_count, 1)

    def test_peak_unreadable_is_logged_once_and_left_none(self):
        self.peaks.side_effect = RuntimeError("no memory stats on this backend")
        module_level_step(1)
        with self.assertLogs("torch.utils.telemetry", logging.WARNING) as logs:
            stats = snapshot()
        self.assertEqual((stats["module_level_step"]["count"], stats["module_level_step"]["peak_memory_bytes"]), (1, None))
        self.assertIn("cannot read the peak memory of device 1", logs.output[0])

    def test_events_resolved_and_destroyed_inside_their_device_guard(self):
        # Resolving in another thread (a dashboard request) must not fall back to that thread's device 0.
        for self.device in (0, 2, 1):
            module_level_step(1)
        result = []
        thread = threading.Thread(target=lambda: result.append(snapshot()))
        thread.start()
        thread.join()
        self.assertEqual(result[0]["module_level_step"]["count"], 3)
        self.assertEqual(FakeEvent.syncs, 3)
        self.assertEqual(FakeEvent.outside_guard, [])
        self.assertEqual(FakeEvent.guard, [])

    def test_both_events_on_the_entry_stream(self):
        # The timed code switches device: the end event still goes on the stream of entry.
        @telemetry(name="switch")
        def switch():
            self.device = 2

        self.device = 1
        switch()
        start, end = (ref() for ref in FakeEvent.created)
        self.assertIs(start.stream, self.streams[1])
        self.assertIs(end.stream, self.streams[1])
        s = snapshot()["switch"]
        self.assertEqual((s["count"], s["total_ms"], s["device"]), (1, 2.0, "cuda:1"))

    def test_failing_pair_drops_only_itself(self):
        # One pair that cannot be resolved is reported; every other pending timing is kept.
        for self.device in (0, 1, 2):
            module_level_step(1)
            with telemetry("blk"):
                pass
        FakeEvent.fail = {self.streams[1]}
        with self.assertLogs("torch.utils.telemetry", logging.WARNING) as logs:
            stats = snapshot()
        self.assertEqual((stats["module_level_step"]["count"], stats["blk"]["count"]), (2, 2))
        self.assertEqual(len(logs.output), 2)
        self.assertIn("could not read the duration of a call of 'module_level_step' on cuda:", logs.output[0])
        self.assertIn("the others are kept", logs.output[0])
        self.assertEqual(snapshot()["blk"]["count"], 2)  # nothing left pending, nothing retried forever

    def test_graph_capture_times_on_host(self):
        # Events recorded while a stream is capturing belong to the graph: use the host clock.
        self.capturing = True
        with mock.patch.object(tm, "_perf_counter_ns", FakeClock(7_000, 9_000)):
            module_level_step(1)
            with telemetry("blk"):
                pass
        self.assertEqual(FakeEvent.created, [])
        stats = snapshot()
        self.assertEqual((stats["module_level_step"]["total_ms"], stats["blk"]["total_ms"]), (0.007, 0.009))
        self.assertEqual(stats["blk"]["device"], "cpu")

    def test_backlog_is_bounded(self):
        with mock.patch.object(tm, "_MAX_PENDING", 8):
            with self.assertLogs("torch.utils.telemetry", logging.WARNING) as logs:
                for _ in range(9):
                    module_level_step(1)
            self.assertIn("still queued", logs.output[0])
            self.assertLessEqual(len(tm._stats["module_level_step"].pending), 8)
            self.assertEqual(snapshot()["module_level_step"]["count"], 9)
            self.assertEqual(snapshot()["module_level_step"]["total_ms"], 18.0)
        # Waited for and read inside the guard; only the calling thread, which recorded them, destroys some.
        self.assertEqual(set(FakeEvent.outside_guard) - {"destroyed"}, set(), FakeEvent.outside_guard)

    def test_coroutine_on_device_keeps_entry_stream(self):
        @telemetry(name="acoro")
        async def coro():
            self.device = 2
            await asyncio.sleep(0)

        asyncio.run(coro())
        self.assertEqual([ref().stream for ref in FakeEvent.created], [self.streams[1]] * 2)
        self.assertEqual(snapshot()["acoro"]["count"], 1)


class TestPeakCounter(TestCase):
    def test_reads_the_one_counter_not_the_flattened_dict(self):
        stats = mock.Mock(return_value={"allocated_bytes": {"all": {"peak": 123, "current": 5}}})
        with (
            mock.patch.object(torch._C, "_accelerator_getDeviceStats", stats, create=True),
            mock.patch.object(torch._C, "_accelerator_isAllocatorInitialized", return_value=True, create=True),
            mock.patch.object(torch.accelerator, "memory_stats", side_effect=AssertionError("flattened")),
        ):
            self.assertEqual(tm._peak_allocated(1), 123)
        stats.assert_called_once_with(1)

    def test_uninitialized_allocator_is_zero(self):
        stats = mock.Mock()
        with (
            mock.patch.object(torch._C, "_accelerator_getDeviceStats", stats, create=True),
            mock.patch.object(torch._C, "_accelerator_isAllocatorInitialized", return_value=False, create=True),
        ):
            self.assertEqual(tm._peak_allocated(0), 0)
        stats.assert_not_called()


class TestDeviceGuard(TestCase):
    def test_device_guard_is_torchs_maybe_exchanging_guard(self):
        # Its exit must "maybe exchange" back: a plain set-device would create a context on device 0.
        self.assertIs(tm._device_guard, torch.accelerator.device_index)
        with mock.patch.object(torch._C, "_accelerator_exchangeDevice", return_value=0) as exchange, mock.patch.object(
            torch._C, "_accelerator_maybeExchangeDevice"
        ) as maybe_exchange:
            with tm._device_guard(3):
                pass
        exchange.assert_called_once_with(3)
        maybe_exchange.assert_called_once_with(0)


@unittest.skipIf(not TEST_CUDA, "needs CUDA")
class TestCUDA(TelemetryTestCase):
    def setUp(self):
        super().setUp()
        patcher = mock.patch.object(tm, "_device_module", None)  # detect the real accelerator
        patcher.start()
        self.addCleanup(patcher.stop)

    def test_cuda_timing_without_synchronize_in_hot_path(self):
        torch.cuda.init()

        @telemetry(name="matmul")
        def matmul(a):
            return a @ a

        a = torch.randn(512, 512, device="cuda")
        with mock.patch("torch.cuda.synchronize", side_effect=AssertionError("synchronize in hot path")):
            for _ in range(5):
                matmul(a)
        s = snapshot()["matmul"]
        self.assertEqual((s["count"], s["device"]), (5, f"cuda:{torch.cuda.current_device()}"))
        self.assertGreater(s["total_ms"], 0)
        self.assertGreaterEqual(s["peak_memory_bytes"], a.numel() * 4)


instantiate_parametrized_tests(TestForms)

if __name__ == "__main__":
    run_tests()
