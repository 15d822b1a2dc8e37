#!/usr/bin/python3
"""Task output near the 4 MiB message limit: result items that grow when the worker writes them
again as JSON, and an item too large for any message. The task must end, and nothing but that
one item may be lost. A real master and worker on 127.0.0.1. And the master's side of a worker's
segments in flight: two Connect streams of one task whose messages it reads out of order.
Run: CRAWLAB_NODE_BIN=build/src/crawlab-node python3 tests/integration/test_output_limits.py"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import h2raw  # noqa: E402
import harness  # noqa: E402
from h2raw import pb_string, pb_varint  # noqa: E402

REGISTERED = "registered with the master"
MIB = 1 << 20

# Prints a small result, one SDK line of almost 1 MiB holding the numbers given, then another
# small result and a log line. argv[1]: the number text, argv[2]: how many, argv[3] (optional):
# one more number at the end.
PRINTER_PY = r'''
import sys
num, count = sys.argv[1], int(sys.argv[2])
extra = sys.argv[3] if len(sys.argv) > 3 else None
nums = ",".join([num] * count) + ("," + extra if extra else "")
line = '{"type":"data","ipc":true,"payload":{"v":[' + nums + ']}}'
assert len(line) < (1 << 20), len(line)
out = sys.stdout
out.write('{"type":"data","ipc":true,"payload":{"n":1}}\n')
out.write(line + "\n")
out.write('{"type":"data","ipc":true,"payload":{"n":3}}\n')
out.write("done printing\n")
out.flush()
'''


class OutputLimits(harness.ClusterTest, harness.TaskOps):

    def start(self):
        self.c.start_master()
        w = self.c.start_worker("w1")
        w.wait_log(REGISTERED)
        self.c.wait_status("online", names=["w1"])
        return w

    def test_item_of_short_numbers_that_grows_past_4_mib_is_stored_and_served_whole(self):
        w = self.start()
        prog = self.script("printer.py", PRINTER_PY)
        # 200,000 times 1e-7: 1 MB printed; 17 digits each, as JSON writers put them, is 4.6 MB
        count = 200000
        self.assertGreater(len("%.17g," % 1e-7) * count, 4 * MIB)
        tid = self.submit1("--", "/usr/bin/python3", prog, "1e-7", str(count))
        t = self.wait_task_status(tid, "finished", timeout=60)
        self.assertEqual(t["data_items"], 3)
        # Worker and master write it with fewer digits where no value changes, so that it fits
        # in one message each way: ReadResults serves it whole.
        items = self.results(tid)
        self.assertEqual(len(items), 3)
        self.assertEqual(items[0], {"n": 1})
        self.assertEqual(items[2], {"n": 3})
        self.assertEqual(items[1], {"v": [1e-7] * count})  # every number the same value
        self.assertEqual(self.logs(tid), ["done printing"])
        self.assertEqual(w.count("refused"), 0)

    def test_item_too_large_for_any_message_is_dropped_with_a_note_and_the_task_ends(self):
        w = self.start()
        prog = self.script("printer.py", PRINTER_PY)
        # 0.1 beside 0.30000000000000004 needs 17 digits: 250,000 of them are 5 MB however
        # they are written
        tid = self.submit1("--", "/usr/bin/python3", prog, "0.1", "250000", "0.30000000000000004")
        t = self.wait_task_status(tid, "finished", timeout=60)
        self.assertEqual(t["data_items"], 2)
        self.assertEqual(self.results(tid), [{"n": 1}, {"n": 3}])
        logs = self.logs(tid)
        self.assertEqual(len(logs), 2, logs)
        self.assertTrue(logs[0].startswith("crawlab-node: 1 result item not sent: larger than "
                                           "one message may carry"), logs)
        self.assertEqual(logs[1], "done printing")
        w.wait_log("does not fit in a message")

    def test_two_segments_read_out_of_order_store_every_line_once_in_order(self):
        # No worker: the test is the worker, with its own connection. A pending task takes lines.
        self.c.start_master(extra=("--log-level=debug",))
        tid = self.submit1("--", "true")
        auth = [("authorization", harness.read_key(self.c.key_file))]
        conn = h2raw.H2Conn(("127.0.0.1", self.c.port))
        self.addCleanup(conn.close)

        def lines(seq, *texts):
            return (pb_varint(1, 1) + pb_string(2, tid) + pb_string(3, json.dumps(texts)) +
                    pb_varint(100, seq))

        # Segment 1 is open and its first message stored when segment 2's message arrives,
        # which starts past what is stored: it waits, and segment 1's rest fills the gap.
        seg1 = conn.open_stream("/grpc.TaskService/Connect", auth)
        conn.send_message(seg1, lines(1, "l1"))
        harness.wait_until(lambda: self.task(tid)["log_lines"] == 1, what="line 1 stored")
        seg2 = conn.open_stream("/grpc.TaskService/Connect", auth)
        conn.send_message(seg2, lines(3, "l3", "l4"))
        self.c.master.wait_log("Connect message past a gap waits for another stream")
        conn.send_message(seg1, lines(2, "l2"), end=True)
        conn.end_stream(seg2)
        self.assertIsNotNone(conn.reply(seg1), "segment 1 not acknowledged")
        self.assertIsNotNone(conn.reply(seg2), "segment 2 not acknowledged")
        self.assertEqual(self.logs(tid), ["l1", "l2", "l3", "l4"])
        # A gap no other stream can fill is still refused, and stores nothing.
        seg3 = conn.open_stream("/grpc.TaskService/Connect", auth)
        conn.send_message(seg3, lines(9, "l9"), end=True)
        self.assertIsNone(conn.reply(seg3), "a gap was acknowledged")
        self.assertEqual(self.task(tid)["log_lines"], 4)


if __name__ == "__main__":
    harness.main()
