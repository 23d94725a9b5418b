"""The claim-delay protocol's state machines, event by event, and on the simulator."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from edgecoder.tasks.arbiter import CLOSED, GRANTED, PENDING
from edgecoder.tasks.claim_delay import ClaimTiming, claim_delay_ms
from edgecoder.tasks.claiming import (
    CLAIMS_PER_SLOT,
    CancelTimer,
    ClaimBook,
    SendClaim,
    SetTimer,
    Standing,
    StopRun,
)
from edgecoder.tasks.fitness import Fit, predicted_ttft_ms, rank
from edgecoder.tasks.messages import Claim, Grant, Notice, Offer
from edgecoder.tasks.offering import (
    BACKOFF_MS,
    ClaimWait,
    Granted,
    NoClaim,
    OfferAttempt,
    SendClose,
    SendOffer,
    Wake,
)
from edgecoder.tasks.relaying import RunWatch, Verdict
from tests.benchmarks.sim_claims import MODEL, ClaimSim, Scenario, scenarios

WALL = 1_800_000_000_000
TIMING = ClaimTiming(budget_ms=2000, max_delay_ms=200, stagger_ms=50, jitter_ms=10)


def offer(
    task: str = "a" * 32, attempt: int = 1, rank: int = 0, origin: str = "o", round_size: int = 2
) -> Offer:
    return Offer(task, attempt, origin, "00" * 32, "chat", "m", 100, 16, WALL + 60_000, 100,
                 rank, round_size)  # fmt: skip


def fits(*names: str) -> list[Fit]:
    return [Fit(name, 100 + i, True, False, 100 + i) for i, name in enumerate(names)]


# -- the claim delay ----------------------------------------------------------------------


def test_the_delay_grows_with_the_extra_ttft_and_saturates_below_the_maximum() -> None:
    delays = [claim_delay_ms(TIMING, extra_ttft_ms=t, rank=0, claim_rtt_ms=0, jitter=0.5)
              for t in (0, 100, 1000, 10_000, 10**9)]  # fmt: skip
    assert delays == sorted(delays)
    assert delays[0] == 0  # the best-ranked candidate with nothing extra claims at once
    assert 199 < delays[-1] < 200


def test_each_rank_waits_a_stagger_or_a_claim_round_trip_plus_jitter() -> None:
    def delay(rank: int, rtt: float = 0, jitter: float = 0.0) -> float:
        return claim_delay_ms(TIMING, extra_ttft_ms=0, rank=rank, claim_rtt_ms=rtt, jitter=jitter)

    assert [delay(r) for r in range(4)] == [0, 50, 100, 150]
    assert delay(2, rtt=80) == 160
    assert delay(1, jitter=0.5) == 55
    assert delay(0, jitter=0.99) == 0  # no jitter at rank 0


def test_a_candidate_alone_in_its_round_claims_at_once_whatever_it_knows() -> None:
    for extra in (0, 1000, 10**9):
        alone = claim_delay_ms(TIMING, extra_ttft_ms=extra, rank=0, claim_rtt_ms=80,
                               jitter=0.9, round_size=1)  # fmt: skip
        assert alone == 0
    worker = book(standing=Standing(None, 5000, 4000))  # far over the budget
    _, (timer,) = worker.on_offer(offer(round_size=1), 7, WALL)
    assert isinstance(timer, SetTimer)
    assert timer.at_ms == 7


# -- the origin's attempt -----------------------------------------------------------------


def attempt(ranking: list[Fit], *, patience_ms: float = 30_000, window_ms: int = 0,
            max_candidates: int = 2) -> OfferAttempt:  # fmt: skip
    return OfferAttempt(offer=offer(), candidates=lambda: list(ranking),
                        max_candidates=max_candidates, patience_ms=patience_ms,
                        wait=ClaimWait(1500), grant_window_ms=window_ms)  # fmt: skip


def test_the_first_round_offers_the_best_candidates_with_their_ranks() -> None:
    machine = attempt(fits("a", "b", "c"))
    actions = machine.start(0)
    offers = [a for a in actions if isinstance(a, SendOffer)]
    assert [(o.node_id, o.offer.rank, o.offer.round_size) for o in offers] == [
        ("a", 0, 2), ("b", 1, 2)]  # fmt: skip
    assert actions[-1] == Wake(1500)
    assert machine.prices == {"a": 100, "b": 101}


def test_one_claim_is_granted_and_the_others_still_weighing_it_are_closed() -> None:
    machine = attempt(fits("a", "b", "c"), max_candidates=3)
    machine.start(0)
    machine.on_answer("c", "busy", 1)
    decision, actions = machine.on_claim(Claim("a" * 32, 1, "b", 10), 5)
    assert decision == GRANTED
    assert actions == [Granted(Claim("a" * 32, 1, "b", 10)), SendClose("a", Notice("a" * 32, 1))]
    assert machine.on_claim(Claim("a" * 32, 1, "a", 5), 6) == (CLOSED, [])
    assert machine.stats["late_claims"] == 1


def test_claims_from_nodes_never_offered_or_for_other_attempts_are_closed() -> None:
    machine = attempt(fits("a", "b", "c"))
    machine.start(0)
    assert machine.on_claim(Claim("a" * 32, 1, "c", 1), 1)[0] == CLOSED  # not offered yet
    assert machine.on_claim(Claim("a" * 32, 2, "a", 1), 1)[0] == CLOSED
    assert machine.on_claim(Claim("b" * 32, 1, "a", 1), 1)[0] == CLOSED
    assert machine.granted is None


def test_a_round_that_everyone_declines_ends_at_once_and_widens_the_attempt() -> None:
    machine = attempt(fits("a", "b", "c", "d"))
    machine.start(0)
    assert machine.on_answer("a", "busy", 2) == []
    actions = machine.on_answer("b", "unreachable", 3)
    assert [(a.node_id, a.offer.rank) for a in actions if isinstance(a, SendOffer)] == [
        ("c", 0), ("d", 1)]  # fmt: skip
    machine = attempt(fits("a"))
    (alone,) = [a for a in machine.start(0) if isinstance(a, SendOffer)]
    assert (alone.offer.rank, alone.offer.round_size) == (0, 1)
    # The first round's late claim is still valid: one arbiter for the attempt.
    assert machine.on_claim(Claim("a" * 32, 1, "a", 1), 4)[0] == GRANTED


def test_after_a_pass_over_everyone_the_next_waits_a_backoff() -> None:
    machine = attempt(fits("a", "b"))
    machine.start(0)
    assert machine.on_timer(1500) == [Wake(1500 + BACKOFF_MS[0])]
    actions = machine.on_timer(1500 + BACKOFF_MS[0])
    assert [a.node_id for a in actions if isinstance(a, SendOffer)] == ["a", "b"]


def test_an_attempt_gives_up_after_its_patience_and_closes_the_silent_candidates() -> None:
    machine = attempt(fits("a"), patience_ms=2000)
    machine.start(0)
    actions = machine.on_timer(2000)
    assert isinstance(actions[0], NoClaim)
    assert actions[0].code == "no_claim"
    assert [a.node_id for a in actions if isinstance(a, SendClose)] == ["a"]
    assert machine.done
    assert machine.on_timer(5000) == []


def test_nobody_able_to_run_the_task_ends_the_attempt_with_no_candidates() -> None:
    machine = attempt([])
    machine.failed_before = 2
    (outcome,) = machine.start(0)
    assert isinstance(outcome, NoClaim)
    assert outcome.code == "no_candidates"
    assert "2 failed already" in outcome.message


def test_a_grant_window_grants_the_best_claim_when_it_closes() -> None:
    machine = attempt(fits("a", "b"), window_ms=20)
    machine.start(0)
    decision, actions = machine.on_claim(Claim("a" * 32, 1, "b", 300), 5)
    assert (decision, actions) == (PENDING, [Wake(25)])
    assert machine.on_claim(Claim("a" * 32, 1, "a", 100), 10) == (PENDING, [])
    actions = machine.on_timer(25)
    assert actions[0] == Granted(Claim("a" * 32, 1, "a", 100))


def test_the_round_wait_learns_from_the_first_claims() -> None:
    wait = ClaimWait(100)
    assert wait.ms() == 100
    for _ in range(20):
        wait.observe(300)
    assert 300 <= wait.ms() <= 800
    wait.observe(10_000)
    assert wait.ms() == 800  # at most 8 floors


# -- the worker's book --------------------------------------------------------------------


def book(slots: int = 1, standing: Standing | None = None) -> ClaimBook:
    return ClaimBook(node_id="w", slots=slots, timing=TIMING, forget_after_ms=10_000,
                     assess=lambda o, q: standing or Standing(None, 120, 40),
                     rng=random.Random(7))  # fmt: skip


def test_an_offer_starts_a_claim_timer_and_its_firing_sends_the_claim() -> None:
    worker = book()
    answer, actions = worker.on_offer(offer(rank=1), 0, WALL)
    assert answer == "considering"
    (timer,) = actions
    assert isinstance(timer, SetTimer)
    assert 50 <= timer.at_ms < 65
    assert worker.on_offer(offer(rank=1), 1, WALL) == ("considering", [])  # the same attempt
    (claim,) = worker.on_timer(timer.token, timer.at_ms)
    assert claim == SendClaim("o", Claim("a" * 32, 1, "w", 120))


def test_a_close_before_the_timer_fires_keeps_the_worker_silent() -> None:
    worker = book()
    _, (timer,) = worker.on_offer(offer(), 0, WALL)
    assert isinstance(timer, SetTimer)
    assert worker.on_close(("a" * 32, 1)) == (True, [CancelTimer(timer.token)])
    assert worker.on_timer(timer.token, timer.at_ms) == []
    assert worker.stats["silent"] == 1


@pytest.mark.parametrize(
    ("slots", "deadline", "standing", "answer"),
    [(0, WALL + 1, None, "not_a_worker"), (1, WALL, None, "expired"),
     (1, WALL + 1, Standing("no_model"), "no_model")],
)  # fmt: skip
def test_offers_it_cannot_serve_are_answered_with_why(
    slots: int, deadline: int, standing: Standing | None, answer: str
) -> None:
    worker = book(slots, standing)
    assert worker.on_offer(replace(offer(), deadline_ms=deadline), 0, WALL) == (answer, [])


def test_a_worker_holding_two_claims_per_slot_answers_busy_and_lets_timers_pass() -> None:
    worker = book()
    tokens = []
    for i in range(CLAIMS_PER_SLOT + 1):
        _, (timer,) = worker.on_offer(offer(task=f"{i:032x}"), 0, WALL)
        assert isinstance(timer, SetTimer)
        tokens.append(timer.token)
    for token in tokens[:CLAIMS_PER_SLOT]:
        assert worker.on_timer(token, 10)
    assert worker.on_timer(tokens[-1], 10) == []  # full: silent
    assert worker.on_offer(offer(task="f" * 32), 11, WALL) == ("busy", [])


def test_a_grant_runs_only_an_attempt_claimed_here_from_its_origin_once() -> None:
    worker = book()
    key = ("a" * 32, 1)
    grant = Grant(key[0], 1, "w", 10_000, WALL + 60_000, "")
    assert worker.grant_refusal(grant, "o", WALL)[0] == "not_claimed"  # type: ignore[index]
    _, (timer,) = worker.on_offer(offer(), 0, WALL)
    assert isinstance(timer, SetTimer)
    worker.on_timer(timer.token, timer.at_ms)
    assert worker.grant_refusal(grant, "mallory", WALL)[0] == "not_claimed"  # type: ignore[index]
    assert worker.grant_refusal(grant, "o", WALL + 60_000)[0] == "expired"  # type: ignore[index]
    assert worker.grant_refusal(grant, "o", WALL) is None
    worker.on_run_started(key)
    assert worker.grant_refusal(grant, "o", WALL)[0] == "already_running"  # type: ignore[index]
    assert worker.on_cancel(key) == (True, [StopRun(key)])
    worker.on_run_ended(key, done=False, elapsed_ms=5)
    assert worker.grant_refusal(grant, "o", WALL)[0] == "not_claimed"  # type: ignore[index]


def test_a_claim_told_closed_frees_its_capacity_and_one_never_answered_is_forgotten() -> None:
    worker = book()
    for i, answer in enumerate(("closed", "unknown")):
        _, (timer,) = worker.on_offer(offer(task=f"{i:032x}"), 0, WALL)
        assert isinstance(timer, SetTimer)
        worker.on_timer(timer.token, timer.at_ms)
        actions = worker.on_claim_answer((f"{i:032x}", 1), answer, 2.0, 10)
        assert actions == ([] if answer == "closed" else [SetTimer(("forget", (f"{i:032x}", 1)),
                                                                   10_010)])  # fmt: skip
    assert worker.claimed_offer(("0" * 32, 1)) is None
    assert worker.claimed_offer(("0" * 31 + "1", 1)) is not None
    worker.on_timer(("forget", ("0" * 31 + "1", 1)), 10_010)
    assert worker.claimed_offer(("0" * 31 + "1", 1)) is None


# -- the origin's watch on a run ----------------------------------------------------------


def test_the_watch_renews_the_lease_on_every_event_and_classifies_them() -> None:
    watch = RunWatch(lease_ms=1000, last_word_ms=0)
    assert watch.on_event("hb", None, 900) is Verdict.ALIVE
    assert not watch.expired(1800)
    assert watch.expired(1900)
    assert watch.on_event("admit", None, 950) is Verdict.ADMITTED
    assert watch.admitted
    assert watch.on_event("text", None, 960) is Verdict.OUTPUT
    assert watch.tokens == 1
    assert watch.on_event("error", "overloaded", 970) is Verdict.RETRY
    assert watch.on_event("error", "context_length_exceeded", 980) is Verdict.FATAL
    assert watch.on_event("later", None, 990) is Verdict.UNKNOWN
    assert watch.on_event("end", None, 999) is Verdict.FINISHED


# -- the protocol on the simulator --------------------------------------------------------


@pytest.mark.parametrize("scenario", scenarios(12, 2, 150, seed=3), ids=lambda s: s.name)
def test_on_the_simulator_every_task_ends_and_none_runs_twice(scenario: Scenario) -> None:
    report = ClaimSim(scenario).run()
    assert report["lost_tasks"] == 0
    assert report["duplicate_executions"] == 0
    assert report["done"] + sum(report["failed"].values()) == scenario.tasks
    if not (scenario.kill_fraction or scenario.partition_fraction):
        assert report["done"] == scenario.tasks, report["failed"]
        assert report["reexecutions"] == 0


@pytest.mark.parametrize("seed", range(5))
def test_the_simulator_is_deterministic_for_a_seed(seed: int) -> None:
    scenario = Scenario("s", 6, 2, 40, loss=0.05, kill_fraction=0.2, seed=seed)
    assert ClaimSim(scenario).run() == ClaimSim(scenario).run()


def test_the_simulators_ranking_is_the_routers_fitness_model() -> None:
    sim = ClaimSim(Scenario("s", 30, 1, 10, seed=4))
    sim._issue(0)
    task = next(iter(sim.tasks.values()))
    for fit in sim._candidates(task):
        worker = sim.workers[fit.node_id]
        expected = predicted_ttft_ms(model=MODEL, prompt_tokens=task.prompt_tokens,
                                     prefill_tps=worker.prefill_tps, queued_ahead=0,
                                     task_ms=2000, load_pct=0, owner_busy=False)  # fmt: skip
        assert fit.ttft_ms == expected


def test_candidates_rank_by_ttft_band_and_spread_within_one() -> None:
    fits = [Fit(f"n{i}", ttft, True, False) for i, ttft in enumerate((900, 10, 200, 260, 240))]
    orders = {tuple(f.node_id for f in rank(fits, 2000, random.Random(seed))) for seed in range(40)}
    # Bands of 250 ms: {10, 200, 240} tie, then 260, then 900.
    assert {order[3:] for order in orders} == {("n3", "n0")}
    assert {frozenset(order[:3]) for order in orders} == {frozenset({"n1", "n2", "n4"})}
    assert len({order[:3] for order in orders}) > 1  # spread, not always the same leader
