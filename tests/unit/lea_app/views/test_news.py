"""Deployment news said together: more than NEWS_EACH of one kind at once are one sentence."""

from __future__ import annotations

from lea_app.views.notifications import NEWS_EACH, News, summarise


def finished(name: str) -> News:
    return News("info", "Deployment finished", f"Cluster '{name}' deployed", (name,))


def failed(name: str) -> News:
    return News("error", "Deployment failed", f"Deployment of '{name}' failed: busy", (name,))


def test_a_few_news_are_each_said_as_they_are() -> None:
    news = [finished("a"), failed("b"), finished("c")]
    assert summarise(news) == news


def test_many_of_one_kind_are_one_sentence_naming_the_first_few_by_name() -> None:
    news = [finished(f"c{i:02d}") for i in reversed(range(12))]
    [said] = summarise(news)
    assert said.level == "info" and said.title == "Deployments finished"
    assert said.text == "12 clusters deployed: 'c00', 'c01', 'c02' and 9 more"
    assert said.clusters == tuple(f"c{i:02d}" for i in range(12))  # every "requested" they answer is withdrawn


def test_each_kind_is_counted_apart_and_a_few_of_another_stay_single() -> None:
    news = [failed("x"), *(finished(f"c{i}") for i in range(NEWS_EACH + 1)), failed("y")]
    said = summarise(news)
    assert [s.text for s in said] == [
        "Deployment of 'x' failed: busy",
        "Deployment of 'y' failed: busy",
        f"{NEWS_EACH + 1} clusters deployed: 'c0', 'c1', 'c2' and 1 more",
    ]


def test_a_cluster_named_twice_is_listed_once() -> None:
    news = [failed("d"), failed("a"), failed("a"), failed("b"), failed("c")]
    [said] = summarise(news)
    assert said.text == "5 deployments failed (the event log says why): 'a', 'b', 'c' and 1 more"
    assert said.clusters == ("a", "b", "c", "d")
