"""The claim-delay protocol's pure state machines on a simulated clock and network.

Deterministic for a seed. Each worker is a :class:`~edgecoder.tasks.claiming.ClaimBook`,
each attempt an :class:`~edgecoder.tasks.offering.OfferAttempt` watched, once granted, by
a :class:`~edgecoder.tasks.relaying.RunWatch`: the same objects the agent's drivers run.
What the simulator supplies is what the drivers supply in the agent: the network (latency
per message, loss as TCP retransmissions, partitions as silence), the backends (one slot
per worker, prefill and decode at the worker's own rates, heartbeats while a run waits),
the adverts (a lagging view of each worker's queue, refreshed once per gossip period),
membership (a killed worker leaves the candidates a few seconds after it dies) and the
clients (a closed loop of concurrent requests per origin).

It counts what the protocol promises: no (task, attempt) runs on two workers, no task's
output is taken from two attempts, no task is lost (every one ends done or failed with a
reason), and what it costs: claim messages, offers and attempts per task, and the time
the protocol adds to the first token.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from edgecoder.config.model import TasksConfig
from edgecoder.tasks.claim_delay import ClaimTiming
from edgecoder.tasks.claiming import ClaimBook, SendClaim, SetTimer, Standing, StopRun
from edgecoder.tasks.fitness import DEFAULT_PREFILL_TPS, Fit, ModelFit, predicted_ttft_ms, rank
from edgecoder.tasks.messages import Grant, Offer
from edgecoder.tasks.offering import (
    ACCEPTED,
    ClaimWait,
    Granted,
    NoClaim,
    OfferAction,
    OfferAttempt,
    SendClose,
    SendDirect,
    SendOffer,
    Wake,
)
from edgecoder.tasks.relaying import RunWatch, Verdict

__all__ = ("ClaimSim", "Scenario")

MODEL = ModelFit(loaded=True, context_length=8192, size_bytes=300 * 1024 * 1024)
ADVERT_PERIOD_MS = 1000
"""How often a worker's advert (its queue) reaches the origins."""
DETECT_DEAD_MS = 5000
"""How long membership takes to declare a killed worker dead."""
CONNECT_TIMEOUT_MS = 3000
"""How long an exchange with a partitioned node waits before it fails."""
RTO_MS = 200
"""TCP's first retransmission timeout (it doubles on each further loss)."""
SKEW_WINDOW_MS = 30_000
"""A signed request older or newer than this is refused (``skew``)."""


@dataclass(frozen=True, slots=True)
class Scenario:
    """One run of the simulator."""

    name: str
    workers: int
    origins: int
    tasks: int
    loss: float = 0.0
    """Probability that a packet of a message is lost (TCP resends it after an RTO)."""
    kill_fraction: float = 0.0
    """Workers killed (their process gone) once a third of the tasks have finished."""
    partition_fraction: float = 0.0
    """Workers cut off from everyone (silence, not refusal) at the same moment."""
    skew_ms: int = 0
    """Each node's wall clock is off by up to this much either way."""
    latency_ms: tuple[float, float] = (0.4, 0.6)
    """One-way latency range (a LAN: 1 ms round trips)."""
    lag_ms: float = 0.0
    """Each message waits up to this long (uniformly) for its receiver's event loop: the
    lag of a busy host (the netns race measures 100-180 ms at worst per node)."""
    concurrency: float = 0.8
    """Requests in flight at once, per worker (a closed loop of clients)."""
    prompt_tokens: tuple[int, int] = (20, 400)
    output_tokens: tuple[int, int] = (2, 32)
    uniform_workers: bool = False
    """Every worker as fast as the others (one host's processes, as in the netns race)."""
    seed: int = 1


@dataclass(slots=True)
class _Run:
    key: tuple[str, int]
    origin: int
    task: int
    prompt_tokens: int
    output_tokens: int
    started_ms: float = 0.0
    stopped: bool = False
    sent_ms: float = 0.0
    """When the last event of its stream arrives (a stream keeps its order)."""


@dataclass(slots=True)
class _Worker:
    node_id: str
    book: ClaimBook
    prefill_tps: int
    decode_tps: int
    skew_ms: int
    alive: bool = True
    cut: bool = False
    busy: _Run | None = None
    queue: list[_Run] = field(default_factory=list)
    advertised_queue: int = 0


@dataclass(slots=True)
class _Task:
    index: int
    origin: int
    task_id: str
    prompt_tokens: int
    output_tokens: int
    started_ms: float
    attempt: int = 0
    failures: int = 0
    excluded: set[str] = field(default_factory=set)
    offering: OfferAttempt | None = None
    wake_version: int = 0
    worker: str | None = None
    watch: RunWatch | None = None
    grant_arrived_ms: float = 0.0
    first_token_ms: float | None = None
    worker_first_ms: float | None = None
    state: str = "offered"
    reason: str = ""
    claims: int = 0


class ClaimSim:
    """N workers and M origins running T tasks by the claim-delay protocol."""

    def __init__(self, scenario: Scenario, config: TasksConfig | None = None) -> None:
        self.s = scenario
        self.cfg = config or TasksConfig()
        self.rng = random.Random(scenario.seed)
        self.now_ms = 0.0
        self._heap: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = 0
        self.timing = ClaimTiming.of(self.cfg)
        self.workers: dict[str, _Worker] = {}
        for i in range(scenario.workers):
            self._add_worker(f"w{i:05d}")
        self.origin_ids = [f"o{i:03d}" for i in range(scenario.origins)]
        self.origin_skew = [self._skew() for _ in self.origin_ids]
        self.assigned: list[Counter[str]] = [Counter() for _ in self.origin_ids]
        self.dead_known: set[str] = set()
        self.tasks: dict[str, _Task] = {}
        self.issued = 0
        self.finished = 0
        self.killed_at: float | None = None
        self.executions: dict[tuple[str, int], list[str]] = defaultdict(list)
        self.accepted: Counter[str] = Counter()
        self.messages: Counter[str] = Counter()
        self.claim_wait = [ClaimWait(self.cfg.offer_timeout_ms) for _ in self.origin_ids]

    # -- the world ------------------------------------------------------------------------

    def _skew(self) -> int:
        return self.rng.randint(-self.s.skew_ms, self.s.skew_ms) if self.s.skew_ms else 0

    def _add_worker(self, node_id: str) -> None:
        prefill = 500 if self.s.uniform_workers else self.rng.randint(200, 800)
        decode = 25 if self.s.uniform_workers else self.rng.randint(10, 40)
        worker: _Worker

        def assess(offer: Offer, peers_ahead: int) -> Standing:
            rate = worker.prefill_tps
            ttft = predicted_ttft_ms(model=MODEL, prompt_tokens=offer.prompt_tokens,
                                     prefill_tps=rate, queued_ahead=peers_ahead,
                                     task_ms=worker.book.task_ms, load_pct=0,
                                     owner_busy=False)  # fmt: skip
            prefill_ms = offer.prompt_tokens * 1000 // max(1, rate or DEFAULT_PREFILL_TPS)
            return Standing(None, ttft, max(0, ttft - prefill_ms))

        book = ClaimBook(
            node_id=node_id,
            slots=1,
            timing=self.timing,
            forget_after_ms=max(self.cfg.offer_timeout_ms * 2, self.cfg.lease_ms),
            assess=assess,
            rng=random.Random(self.rng.random()),
        )
        worker = _Worker(node_id, book, prefill, decode, self._skew())
        self.workers[node_id] = worker

    def at(self, when_ms: float, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn(*args)`` at ``when_ms`` of simulated time."""
        self._seq += 1
        heapq.heappush(self._heap, (max(when_ms, self.now_ms), self._seq, fn, args))

    def _latency(self) -> float:
        delay = self.rng.uniform(*self.s.latency_ms)
        if self.s.lag_ms:
            delay += self.rng.uniform(0, self.s.lag_ms)
        rto = RTO_MS
        while self.s.loss and self.rng.random() < self.s.loss:
            delay += rto
            rto *= 2
        return delay

    def _reachable(self, node_id: str) -> bool:
        worker = self.workers.get(node_id)
        return worker is None or not worker.cut

    def _exchange(self, src: str, dst: str, kind: str, handle: Callable[[float], Any],
                  reply: Callable[[Any, float], None], fail: Callable[[str, float], None],
                  ) -> None:  # fmt: skip
        """A request from ``src`` to ``dst``: ``handle`` runs at ``dst`` on arrival, its
        result travels back to ``reply``; ``fail`` hears why it did not."""
        self.messages[kind] += 1
        if not self._reachable(src) or not self._reachable(dst):
            self.at(self.now_ms + CONNECT_TIMEOUT_MS, fail, "unreachable")
            return
        there = self.now_ms + self._latency()
        back = self._latency()

        def arrive() -> None:
            worker = self.workers.get(dst)
            if worker is not None and not worker.alive:
                self.at(self.now_ms + back, fail, "unreachable")  # connection refused
                return
            if abs(self._clock_of(src) - self._clock_of(dst)) > SKEW_WINDOW_MS:
                self.at(self.now_ms + back, fail, "skew")
                return
            answer = handle(self.now_ms)
            self.at(self.now_ms + back, reply, answer)

        self.at(there, arrive)

    def _clock_of(self, node_id: str) -> int:
        worker = self.workers.get(node_id)
        if worker is not None:
            return worker.skew_ms
        return self.origin_skew[self.origin_ids.index(node_id)]

    def _wall(self, node_id: str) -> int:
        return int(self.now_ms) + self._clock_of(node_id) + 1_800_000_000_000

    # -- origins --------------------------------------------------------------------------

    def _candidates(self, task: _Task) -> list[Fit]:
        """As the router ranks peers (``peer_fit``: a loaded model, no load, no owner;
        then :func:`~edgecoder.tasks.fitness.rank`): predicted TTFT from the advert's
        queue or this origin's own assignments. Inlined: it runs for every round."""
        assigned = self.assigned[task.origin]
        skip = task.excluded | self.dead_known
        prompt = task.prompt_tokens * 1000
        fits = [
            Fit(w.node_id, prompt // w.prefill_tps
                + max(w.advertised_queue, assigned[w.node_id]) * 2000, True, False)
            for w in self.workers.values()
            if w.node_id not in skip
        ]  # fmt: skip
        return rank(fits, self.cfg.ttft_budget_ms, self.rng)

    def _issue(self, origin: int) -> None:
        if self.issued >= self.s.tasks:
            return
        index = self.issued
        self.issued += 1
        task = _Task(index, origin, f"{index:032x}", self.rng.randint(*self.s.prompt_tokens),
                     self.rng.randint(*self.s.output_tokens), self.now_ms)  # fmt: skip
        self.tasks[task.task_id] = task
        self._next_attempt(task)

    def _next_attempt(self, task: _Task) -> None:
        cfg = self.cfg
        if task.failures >= cfg.max_attempts:
            self._end(task, "failed", f"no peer finished the task in {cfg.max_attempts} attempts")
            return
        task.attempt += 1
        task.worker, task.watch = None, None
        origin_id = self.origin_ids[task.origin]
        offer = Offer(task.task_id, task.attempt, origin_id, "00" * 32, "chat", "m",
                      task.prompt_tokens, task.output_tokens,
                      self._wall(origin_id) + cfg.deadline_s * 1000, 100)  # fmt: skip
        task.offering = OfferAttempt(
            offer=offer,
            candidates=lambda: self._candidates(task),
            max_candidates=cfg.max_candidates,
            patience_ms=30_000,
            wait=self.claim_wait[task.origin],
            grant_window_ms=cfg.grant_window_ms,
            direct=cfg.direct_grant,
            failed_before=len(task.excluded),
        )
        self._do(task, task.offering, task.offering.start(self.now_ms))

    def _do(self, task: _Task, offering: OfferAttempt, actions: list[OfferAction]) -> None:
        origin_id = self.origin_ids[task.origin]
        for action in actions:
            if isinstance(action, SendOffer):
                self._send_offer(task, offering, action)
            elif isinstance(action, SendDirect):
                self._grant(task, action.node_id, offering, action.offer)
            elif isinstance(action, SendClose):
                key = (action.notice.task_id, action.notice.attempt)
                worker = self.workers[action.node_id]
                self._exchange(origin_id, action.node_id, "close",
                               lambda _now, w=worker, k=key: self._close(w, k),
                               lambda *_: None, lambda *_: None)  # fmt: skip
            elif isinstance(action, Wake):
                task.wake_version += 1
                self.at(action.at_ms, self._wake, task, offering, task.wake_version)
            elif isinstance(action, Granted):
                if task.worker != action.claim.worker:  # a direct grant is already sent
                    self._grant(task, action.claim.worker)
            elif isinstance(action, NoClaim):
                self._end(task, "failed", action.code)

    def _send_offer(self, task: _Task, offering: OfferAttempt, action: SendOffer) -> None:
        worker = self.workers[action.node_id]
        origin_id = self.origin_ids[task.origin]
        self._exchange(
            origin_id, worker.node_id, "offer",
            lambda _now: self._offer(worker, action.offer),
            lambda answer, *_: self._answered(task, offering, worker.node_id, answer),
            lambda code, *_: self._answered(task, offering, worker.node_id, code),
        )  # fmt: skip

    def _answered(self, task: _Task, offering: OfferAttempt, node_id: str, answer: str) -> None:
        self._do(task, offering, offering.on_answer(node_id, answer, self.now_ms))

    def _wake(self, task: _Task, offering: OfferAttempt, version: int) -> None:
        if version == task.wake_version and task.offering is offering:
            self._do(task, offering, offering.on_timer(self.now_ms))

    def _on_claim(self, task_id: str, attempt: int, claim: Any) -> str:
        task = self.tasks[task_id]
        task.claims += 1
        offering = task.offering
        if offering is None or offering.offer.attempt != attempt or task.state != "offered":
            return "closed"
        decision, actions = offering.on_claim(claim, self.now_ms)
        self._do(task, offering, actions)
        return decision

    def _grant(
        self,
        task: _Task,
        worker_id: str,
        offering: OfferAttempt | None = None,
        direct: Offer | None = None,
    ) -> None:
        """Send the grant (``direct``: with its offer, before any claim, to ``offering``'s
        only candidate, which answers it)."""
        task.worker = worker_id
        self.assigned[task.origin][worker_id] += 1
        origin_id = self.origin_ids[task.origin]
        grant = Grant(task.task_id, task.attempt, worker_id, self.cfg.lease_ms,
                      self._wall(origin_id) + self.cfg.deadline_s * 1000, "", direct)  # fmt: skip
        watch = RunWatch(self.cfg.lease_ms, self.now_ms)
        task.watch = watch
        attempt = task.attempt
        self.at(watch.expires_ms(), self._lease_check, task, attempt)
        worker = self.workers[worker_id]

        def current() -> bool:
            return task.attempt == attempt and task.watch is watch

        def refused(code: str, *_: Any) -> None:
            if current():
                if offering is not None:  # it may have taken it: the attempt failed
                    taken = offering.on_direct_answer(worker_id, ACCEPTED, self.now_ms)
                    self._do(task, offering, taken)
                self._fail_attempt(task, f"the worker refused the grant: {code}")

        def answered(refusal: str, *_: Any) -> None:
            if offering is None:
                if refusal:
                    refused(refusal)
                return
            if not current():
                return
            if refusal:  # declined before anything ran: the attempt goes on in rounds
                self._release(task)
                task.worker, task.watch = None, None
            answer = offering.on_direct_answer(worker_id, refusal or ACCEPTED, self.now_ms)
            self._do(task, offering, answer)

        self._exchange(origin_id, worker_id, "run",
                       lambda _now: self._accept(worker, grant, origin_id, task),
                       answered, refused)  # fmt: skip

    def _lease_check(self, task: _Task, attempt: int) -> None:
        watch = task.watch
        if task.attempt != attempt or watch is None or task.state in ("done", "failed"):
            return
        if watch.expired(self.now_ms):
            self._fail_attempt(task, f"no word from the worker for {self.cfg.lease_ms} ms")
        else:
            self.at(watch.expires_ms(), self._lease_check, task, attempt)

    def _event(self, task: _Task, attempt: int, kind: str, code: str | None) -> None:
        watch = task.watch
        if task.attempt != attempt or watch is None or task.state in ("done", "failed"):
            return  # a stream the origin closed: nobody reads it
        verdict = watch.on_event(kind, code, self.now_ms)
        if verdict is Verdict.OUTPUT and task.first_token_ms is None:
            task.first_token_ms = self.now_ms
        elif verdict is Verdict.FINISHED:
            self.accepted[task.task_id] += 1
            self._release(task)
            self._end(task, "done", "")
        elif verdict is Verdict.RETRY:
            self._fail_attempt(task, code or "")
        elif verdict is Verdict.FATAL:
            self._release(task)
            self._end(task, "failed", code or "")

    def _release(self, task: _Task) -> None:
        if task.worker is not None:
            assigned = self.assigned[task.origin]
            assigned[task.worker] -= 1
            if assigned[task.worker] <= 0:
                del assigned[task.worker]

    def _fail_attempt(self, task: _Task, reason: str) -> None:
        worker_id = task.worker
        self._release(task)
        task.failures += 1
        task.watch = None
        task.first_token_ms = None
        if worker_id is not None:
            task.excluded.add(worker_id)
            key = (task.task_id, task.attempt)
            worker = self.workers[worker_id]
            self._exchange(self.origin_ids[task.origin], worker_id, "cancel",
                           lambda _now: self._cancel(worker, key),
                           lambda *_: None, lambda *_: None)  # fmt: skip
        task.reason = reason
        self._next_attempt(task)

    def _end(self, task: _Task, state: str, reason: str) -> None:
        if task.state in ("done", "failed"):
            return
        task.state, task.reason = state, reason
        if task.offering is not None:
            self._do(task, task.offering, task.offering.cancel())
        self.finished += 1
        if (
            self.killed_at is None
            and (self.s.kill_fraction or self.s.partition_fraction)
            and self.finished >= self.s.tasks // 3
        ):
            self._strike()
        self.at(self.now_ms, self._issue, task.origin)  # the client sends its next request

    # -- workers --------------------------------------------------------------------------

    def _offer(self, worker: _Worker, offer: Offer) -> str:
        answer, actions = worker.book.on_offer(offer, self.now_ms, self._wall(worker.node_id))
        self._worker_do(worker, actions)
        return answer

    def _close(self, worker: _Worker, key: tuple[str, int]) -> None:
        _, actions = worker.book.on_close(key)
        self._worker_do(worker, actions)

    def _cancel(self, worker: _Worker, key: tuple[str, int]) -> None:
        _, actions = worker.book.on_cancel(key)
        self._worker_do(worker, actions)

    def _worker_do(self, worker: _Worker, actions: list[Any]) -> None:
        for action in actions:
            if isinstance(action, SetTimer):
                self.at(action.at_ms, self._worker_timer, worker, action.token)
            elif isinstance(action, SendClaim):
                self._send_claim(worker, action)
            elif isinstance(action, StopRun):
                self._stop(worker, action.key)
            # CancelTimer: the timer fires and the book ignores it (it forgot the token)

    def _worker_timer(self, worker: _Worker, token: tuple[str, tuple[str, int]]) -> None:
        if worker.alive:
            self._worker_do(worker, worker.book.on_timer(token, self.now_ms))

    def _send_claim(self, worker: _Worker, action: SendClaim) -> None:
        key = (action.claim.task_id, action.claim.attempt)
        sent = self.now_ms

        def answered(answer: str, *_: Any) -> None:
            if worker.alive:
                rtt = self.now_ms - sent
                self._worker_do(worker, worker.book.on_claim_answer(key, answer, rtt, self.now_ms))

        def lost(code: str, *_: Any) -> None:
            if worker.alive:
                answer = "closed" if code == "skew" else "unknown"
                self._worker_do(worker, worker.book.on_claim_answer(key, answer, None, self.now_ms))

        self._exchange(worker.node_id, action.origin, "claim",
                       lambda _now: self._on_claim(key[0], key[1], action.claim),
                       answered, lost)  # fmt: skip

    def _accept(self, worker: _Worker, grant: Grant, sender: str, task: _Task) -> str:
        if grant.offer is not None:
            declined = worker.book.on_direct(grant.offer, self._wall(worker.node_id))
            if declined is not None:
                return declined
        refusal = worker.book.grant_refusal(grant, sender, self._wall(worker.node_id))
        if refusal is not None:
            return refusal[0]
        key = (grant.task_id, grant.attempt)
        worker.book.on_run_started(key)
        self.executions[key].append(worker.node_id)
        task.grant_arrived_ms = self.now_ms
        run = _Run(key, task.origin, task.index, task.prompt_tokens, task.output_tokens,
                   sent_ms=self.now_ms)  # fmt: skip
        if worker.busy is None:
            self._start(worker, run)
        else:
            worker.queue.append(run)
            self._heartbeat(worker, run)
        return ""

    def _heartbeat(self, worker: _Worker, run: _Run) -> None:
        if not worker.alive or run.stopped or worker.busy is run:
            return
        self._emit(worker, run, "hb")
        self.at(self.now_ms + self.cfg.lease_ms / 4, self._heartbeat, worker, run)

    def _emit(self, worker: _Worker, run: _Run, kind: str, code: str | None = None) -> None:
        if not worker.alive or run.stopped or worker.cut:
            return
        self.messages["event"] += 1
        arrive = max(run.sent_ms, self.now_ms + self._latency())
        run.sent_ms = arrive
        task = self.tasks[run.key[0]]
        if kind == "text" and task.worker_first_ms is None:
            task.worker_first_ms = self.now_ms - task.grant_arrived_ms
        self.at(arrive, self._event, task, run.key[1], kind, code)

    def _start(self, worker: _Worker, run: _Run) -> None:
        worker.busy = run
        run.started_ms = self.now_ms
        self._emit(worker, run, "admit")
        prefill = run.prompt_tokens * 1000 / worker.prefill_tps
        per_token = 1000 / worker.decode_tps
        for i in range(run.output_tokens):
            self.at(self.now_ms + prefill + i * per_token, self._token, worker, run)
        self.at(self.now_ms + prefill + run.output_tokens * per_token, self._finish, worker, run)

    def _token(self, worker: _Worker, run: _Run) -> None:
        if worker.busy is run:
            self._emit(worker, run, "text")

    def _finish(self, worker: _Worker, run: _Run) -> None:
        if worker.busy is not run or not worker.alive:
            return
        self._emit(worker, run, "end")
        worker.book.on_run_ended(run.key, True, int(self.now_ms - run.started_ms))
        self._next_run(worker)

    def _stop(self, worker: _Worker, key: tuple[str, int]) -> None:
        run = worker.busy if worker.busy is not None and worker.busy.key == key else None
        queued = [r for r in worker.queue if r.key == key]
        for r in [run, *queued]:
            if r is not None:
                r.stopped = True
                worker.book.on_run_ended(key, False, int(self.now_ms - r.started_ms))
        worker.queue = [r for r in worker.queue if r.key != key]
        if run is not None:
            self._next_run(worker)

    def _next_run(self, worker: _Worker) -> None:
        worker.busy = None
        while worker.queue:
            run = worker.queue.pop(0)
            if not run.stopped:
                self._start(worker, run)
                return

    def _advertise(self, worker: _Worker) -> None:
        if not worker.alive:
            return
        worker.advertised_queue = len(worker.queue) + (worker.busy is not None)
        self.at(self.now_ms + ADVERT_PERIOD_MS, self._advertise, worker)

    def _strike(self) -> None:
        self.killed_at = self.now_ms
        ids = sorted(self.workers)
        self.rng.shuffle(ids)
        kill = round(len(ids) * self.s.kill_fraction)
        cut = round(len(ids) * self.s.partition_fraction)
        for node_id in ids[:kill]:
            self.workers[node_id].alive = False
            self.at(self.now_ms + DETECT_DEAD_MS, self.dead_known.add, node_id)
        for node_id in ids[kill : kill + cut]:
            self.workers[node_id].cut = True
            self.at(self.now_ms + DETECT_DEAD_MS, self.dead_known.add, node_id)

    # -- running ----------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Run every task to its end; the scenario's figures."""
        for worker in self.workers.values():
            self.at(self.rng.uniform(0, ADVERT_PERIOD_MS), self._advertise, worker)
        clients = max(1, round(self.s.workers * self.s.concurrency))
        for i in range(clients):
            self.at(self.rng.uniform(0, 50), self._issue, i % self.s.origins)
        while self._heap and self.finished < self.s.tasks:
            self.now_ms, _, fn, args = heapq.heappop(self._heap)
            fn(*args)
        return self.report()

    def report(self) -> dict[str, Any]:
        """The figures so far."""
        tasks = list(self.tasks.values())
        done = [t for t in tasks if t.state == "done"]
        by_task: dict[str, set[str]] = defaultdict(set)
        double_runs = 0
        for (task_id, _attempt), workers in self.executions.items():
            by_task[task_id].update(workers)
            double_runs += len(workers) > 1
        duplicates = double_runs + sum(1 for n in self.accepted.values() if n > 1)
        runs = sum(len(w) for w in self.executions.values())
        added = sorted(
            t.first_token_ms - t.started_ms - (t.worker_first_ms or 0.0)
            for t in done
            if t.first_token_ms is not None
        )
        delays = sum(w.book.stats["claim_delay_ms"] for w in self.workers.values())
        timers = sum(w.book.stats["timers"] for w in self.workers.values())
        n = max(1, self.s.tasks)
        failed = Counter(t.reason for t in tasks if t.state == "failed")
        return {
            "scenario": self.s.name,
            "workers": self.s.workers,
            "origins": self.s.origins,
            "tasks": self.s.tasks,
            "loss": self.s.loss,
            "killed": round(self.s.workers * self.s.kill_fraction),
            "partitioned": round(self.s.workers * self.s.partition_fraction),
            "skew_ms": self.s.skew_ms,
            "done": len(done),
            "failed": dict(failed),
            "lost_tasks": self.s.tasks - len(done) - sum(failed.values()),
            "duplicate_executions": duplicates,
            "reexecutions": runs - len(by_task),
            "claims_per_task": round(self.messages["claim"] / n, 3),
            "attempts_per_task": round(sum(t.attempt for t in tasks) / n, 3),
            "offers_per_task": round(self.messages["offer"] / n, 3),
            "claim_delay_ms_mean": round(delays / max(1, timers), 2),
            "added_ttft_ms": {"p50": _quantile(added, 50), "p99": _quantile(added, 99)},
            "simulated_s": round(self.now_ms / 1000, 1),
            "workers_used": len({w for ws in self.executions.values() for w in ws}),
        }


def _quantile(ordered: list[float], pct: int) -> float | None:
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, len(ordered) * pct // 100)], 2)


def race(workers: int = 20, origins: int = 3, tasks: int = 500) -> Scenario:
    """The netns race (tests/netns/test_lan_tasks.py): identical workers on one host,
    16 clients for 20 workers, short prompts, two output tokens, and the event-loop lag of
    23 agents sharing two cores (up to 25 ms a message; the race measures 100-180 ms at
    worst per node)."""
    return Scenario("netns_race", workers, origins, tasks, concurrency=0.8, lag_ms=25,
                    prompt_tokens=(12, 14), output_tokens=(2, 2), uniform_workers=True)  # fmt: skip


def scenarios(workers: int, origins: int, tasks: int, seed: int = 1) -> list[Scenario]:
    """The standard set for one size: clean, lossy, with kills, partitions and skew."""
    base = Scenario("baseline", workers, origins, tasks, seed=seed)
    return [
        race(workers, origins, tasks),
        base,
        replace(base, name="loss_5pct", loss=0.05),
        replace(base, name="kill_10pct", kill_fraction=0.10),
        replace(base, name="partition_5pct", partition_fraction=0.05),
        replace(base, name="skew_12s", skew_ms=12_000),
        replace(base, name="loss_5pct_kill_10pct", loss=0.05, kill_fraction=0.10),
    ]
