#!/usr/bin/env python3
"""Generates the inputs of the four seed workloads and their expected outputs, computed here
independently of Weir (plain Python over the same records). Run from this folder:
    python3 gen.py
Deterministic: the same files every time."""
import json, random
from collections import defaultdict
from decimal import Decimal

random.seed(7)
HOUR = 3_600_000
DAY = 24 * HOUR
START = 1_767_225_600_000  # 2026-01-01T00:00:00Z
USERS = [f"User_{i}" for i in range(1, 21)]
STATUSES = ["created", "paid", "paid", "shipped", "cancelled"]

def orders(n):
    out, t = [], START
    for i in range(n):
        t += random.randint(20_000, 400_000)
        amount = Decimal(random.randint(100, 50_000)) / 100
        out.append({"order_id": f"o{i}", "user_id": random.choice(USERS), "amount": float(amount),
                    "status": random.choice(STATUSES), "ts": t})
    return out

def num(d):
    d = d.normalize()
    return int(d) if d == d.to_integral_value() else float(d)

def write(name, obj):
    with open(name, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")

def records(rows, key=None):
    return [{"key": (r[key] if key else None), "value": r, "timestamp": r["ts"]} for r in rows]

rows = orders(600)
last = rows[-1]["ts"]

def closed(end, delay=0):
    """Whether a window has closed once every record is read: its end is at or before the
    watermark (the last event time minus the delay). The queries' idle_timeout (a minute) is
    longer than a test waits, so idle time does not move the watermark in these cases."""
    return end <= last - delay

# 1. Orders per hour: TUMBLE 1 hour, EMIT FINAL; every window closes (the last by idle time).
per_hour = defaultdict(int)
for r in rows:
    per_hour[r["ts"] // HOUR * HOUR] += 1
write("orders_per_hour.input.json", {"topics": [{"name": "orders", "records": records(rows, "order_id")}]})
write("orders_per_hour.expected.json", {"topic": "orders_per_hour", "records": [
    {"key": None, "value": {"window_start": w, "window_end": w + HOUR, "orders": n}}
    for w, n in sorted(per_hour.items()) if closed(w + HOUR, 5_000)]})

# 2. Active users: HOP slide 1 minute, size 5 minutes, COUNT(DISTINCT user_id), EMIT FINAL.
MIN = 60_000
active = defaultdict(set)
for r in rows:
    t = r["ts"]
    last_start = t // MIN * MIN
    s = last_start - 5 * MIN + MIN
    while s <= last_start:
        if s <= t < s + 5 * MIN:
            active[s].add(r["user_id"])
        s += MIN
write("active_users.input.json", {"topics": [{"name": "orders", "records": records(rows, "order_id")}]})
write("active_users.expected.json", {"topic": "active_users", "records": [
    {"key": None, "value": {"window_start": w, "window_end": w + 5 * MIN, "active_users": len(u)}}
    for w, u in sorted(active.items()) if closed(w + 5 * MIN)]})

# 3. Revenue per day of paid orders: exact decimal sums.
revenue = defaultdict(lambda: Decimal(0))
count = defaultdict(int)
for r in rows:
    if r["status"] == "paid":
        d = r["ts"] // DAY * DAY
        revenue[d] += Decimal(str(r["amount"]))
        count[d] += 1
write("revenue_per_day.input.json", {"topics": [{"name": "orders", "records": records(rows, "order_id")}]})
write("revenue_per_day.expected.json", {"topic": "revenue_per_day", "records": [
    {"key": None, "value": {"day": d, "revenue": num(revenue[d]), "paid_orders": count[d]}}
    for d in sorted(revenue) if closed(d + DAY)]})

# 4. Orders enriched with their customer: LEFT JOIN to a table (some users unknown, one renamed
#    before the orders: the table's latest value counts).
customers = []
for i, u in enumerate(USERS[:15]):
    customers.append({"customer_id": u, "name": f"Customer {i + 1}", "tier": "gold" if i % 3 == 0 else "silver", "ts": START})
customers.append({"customer_id": "User_2", "name": "Customer Two", "tier": "platinum", "ts": START})
table = {c["customer_id"]: c for c in customers}
enriched = []
for r in rows[:200]:
    c = table.get(r["user_id"])
    enriched.append({"key": r["order_id"], "value": {"order_id": r["order_id"], "amount": num(Decimal(str(r["amount"]))),
        "name": c["name"] if c else None, "tier": c["tier"] if c else None}})
write("enriched_orders.input.json", {"topics": [
    {"name": "customers", "records": records(customers, "customer_id")},
    {"name": "orders", "records": records(rows[:200], "order_id")}]})
write("enriched_orders.expected.json", {"topic": "orders_enriched", "records": enriched})
