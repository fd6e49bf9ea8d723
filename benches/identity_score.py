"""Pairwise precision and recall of curated.id_mapping against the generator's truth.

    python benches/identity_score.py DATA_DIR MAPPING_CSV

DATA_DIR holds `cdplake generate`'s truth.csv (owner of every identifier) and truth_edges.csv
(two identifiers of one person on one row); MAPPING_CSV is `cdplake query "SELECT one_id,
id_type, id_value, is_active FROM curated.id_mapping WHERE is_active" --format csv`. Prints the
scores beside the evidence ceiling (union-find over the true edges) and the one_ids that mix
people. The same measure as tests/tests/it/identity.rs, written independently in Python.
"""
import csv, sys, collections
d = sys.argv[1]; mapping_csv = sys.argv[2]
truth = {}
for r in csv.DictReader(open(f"{d}/truth.csv")):
    truth[(r["id_type"], r["id_value"])] = r["person_id"]
parent = {k: k for k in truth}
def find(x):
    while parent[x] != x:
        parent[x] = parent[parent[x]]; x = parent[x]
    return x
for r in csv.DictReader(open(f"{d}/truth_edges.csv")):
    a = (r["id_type_a"], r["id_value_a"]); b = (r["id_type_b"], r["id_value_b"])
    if a in parent and b in parent:
        ra, rb = find(a), find(b)
        if ra != rb: parent[ra] = rb
pred = {}
for r in csv.DictReader(open(mapping_csv)):
    if r.get("is_active") not in ("true", "True", "1"): continue
    pred[(r["id_type"], r["id_value"])] = r["one_id"]
def pairs(n): return n*(n-1)//2
def score(cluster_of):
    pc = collections.Counter(); pp = collections.Counter(); both = collections.Counter()
    for k, p in truth.items():
        c = cluster_of(k)
        pc[c] += 1; pp[p] += 1; both[(c, p)] += 1
    tp = sum(pairs(n) for n in both.values()); pred_pairs = sum(pairs(n) for n in pc.values()); true_pairs = sum(pairs(n) for n in pp.values())
    P = tp / pred_pairs if pred_pairs else 1.0; R = tp / true_pairs
    return P, R, 2*P*R/(P+R)
P, R, F = score(lambda k: pred.get(k, ("single",) + k))
cP, cR, cF = score(lambda k: find(k))
persons_of = collections.defaultdict(set)
for k, o in pred.items():
    if k in truth: persons_of[o].add(truth[k])
mixed = [o for o, ps in persons_of.items() if len(ps) > 1]
notruth = [k for k in pred if k not in truth]
print(f"precision {P:.4f} recall {R:.4f} F1 {F:.4f} | ceiling P {cP:.4f} R {cR:.4f} F1 {cF:.4f} | mixed one_ids {len(mixed)} | mapped ids not in truth {len(notruth)} | truth ids {len(truth)} mapped {sum(1 for k in truth if k in pred)}")
if mixed:
    big = sorted(mixed, key=lambda o: -len(persons_of[o]))[:5]
    for o in big:
        print("  mixed", o, len(persons_of[o]), sorted(k for k,v in pred.items() if v==o)[:12])
if notruth[:10]: print("  not in truth e.g.", notruth[:10])
