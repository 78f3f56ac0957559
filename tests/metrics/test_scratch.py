"""`in_order`: pieces worked on a thread pool, results in the items' order, a bounded lead."""

import concurrent.futures
import threading
import time

from vccjax.metrics import scratch


def test_results_come_in_the_items_order_with_at_most_ahead_plus_one_pending():
  lock = threading.Lock()
  started, used = [], []

  def work(i, delay):
    with lock:
      started.append(i)
    time.sleep(delay)
    return i * i

  def items():  # the later an item, the sooner its work is done
    for i in range(8):
      with lock:  # items drawn but not yet used: at most ahead + 1
        assert len(started) - len(used) <= 3
      yield i, 0.02 * (8 - i)

  with concurrent.futures.ThreadPoolExecutor(4) as pool:
    for result in scratch.in_order(pool, work, items(), ahead=2):
      used.append(result)
  assert used == [i * i for i in range(8)]
  assert sorted(started) == list(range(8))
