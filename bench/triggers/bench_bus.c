/* bench_bus.c -- bench/triggers (b), the in-process event bus alone: SUBS subscriptions over 50
 * event families (exact types, "fam.*", "fam.#", "*.failed", with where filters: equality,
 * ranges, `in`) tuned so that about 1% of them match each event; pre-built events published in a
 * loop on one thread for SECS seconds. Prints events/s, matches/s, subscriptions matched per
 * event and the match fraction, then the same figures for a naive loop over every subscription
 * (no index) for comparison.
 *   bench_bus [SUBS=1000] [SECS=3] */
#include <stdio.h>
#include <stdlib.h>

#include "bus/bus.h"
#include "bus/pattern.h"
#include "bus/predicate.h"

#define FAMILIES 50
#define NEVENTS  4096

static const char *const family_words[] = {"order",    "payment", "invoice", "user",   "cart",
                                           "shipment", "refund",  "ticket",  "review", "account"};
static const char *const actions[] = {"created", "updated", "deleted", "failed"};
static const char *const tiers[] = {"bronze", "silver", "gold", "platinum"};
static const char *const regions[] = {"eu-west",  "eu-north", "us-east", "us-west",
                                      "ap-south", "ap-east",  "sa-east", "af-south"};

static char families[FAMILIES][32];

typedef struct {
    char pattern[64];
    json_t *where;
    af_predicate_t *pred; /* for the naive loop */
} spec_t;

static void counted(void *ud, const af_bus_event_t *ev) {
    (void)ev;
    (*(uint64_t *)ud)++;
}

/* One subscription of the mix; the comment gives its chance to match a uniform event. */
static void make_spec(spec_t *s, int i) {
    const char *fam = families[rand() % FAMILIES];
    const char *act = actions[rand() % 4];
    int r = rand() % 100;
    s->where = NULL;
    if (r < 20) { /* exact, no filter: 1/200 */
        snprintf(s->pattern, sizeof s->pattern, "%s.%s", fam, act);
    } else if (r < 30) { /* exact, region in 4 of 8: 1/400 */
        snprintf(s->pattern, sizeof s->pattern, "%s.%s", fam, act);
        s->where = json_pack("{s:{s:[ssss]}}", "region", "in", regions[i % 8], regions[(i + 1) % 8],
                             regions[(i + 2) % 8], regions[(i + 3) % 8]);
    } else if (r < 45) { /* fam.*, tier in 2 of 4: 1/100 */
        snprintf(s->pattern, sizeof s->pattern, "%s.*", fam);
        s->where =
            json_pack("{s:{s:[ss]}}", "customer.tier", "in", tiers[i % 4], tiers[(i + 1) % 4]);
    } else if (r < 60) { /* fam.*, vip: 1/100 */
        snprintf(s->pattern, sizeof s->pattern, "%s.*", fam);
        s->where = json_pack("{s:b}", "vip", 1);
    } else if (r < 80) { /* fam.#, amount >= 250: 3/200 */
        snprintf(s->pattern, sizeof s->pattern, "%s.#", fam);
        s->where = json_pack("{s:{s:i}}", "amount", "gte", 250);
    } else if (r < 95) { /* *.failed, a band of amounts 80 wide: 1/50 */
        int lo = (rand() % 12) * 80;
        snprintf(s->pattern, sizeof s->pattern, "*.failed");
        s->where = json_pack("{s:{s:i,s:i}}", "amount", "gte", lo, "lt", lo + 80);
    } else { /* exact, gold customers with small orders in one region: ~1/25600 */
        snprintf(s->pattern, sizeof s->pattern, "%s.%s", fam, act);
        s->where = json_pack("{s:s,s:{s:i},s:s}", "customer.tier", "gold", "amount", "lt", 100,
                             "region", regions[i % 8]);
    }
}

static json_t *make_data(int i) {
    return json_pack("{s:s,s:i,s:s,s:b,s:{s:i,s:s},s:[{s:s,s:i}]}", "id", "evt", "amount",
                     rand() % 1000, "region", regions[rand() % 8], "vip", rand() % 2, "customer",
                     "id", i, "tier", tiers[rand() % 4], "items", "sku", "SKU-1", "qty",
                     1 + rand() % 5);
}

int main(int argc, char **argv) {
    int nsubs = argc > 1 ? atoi(argv[1]) : 1000;
    double secs = argc > 2 ? atof(argv[2]) : 3;
    if (nsubs <= 0 || secs <= 0) {
        fprintf(stderr, "usage: bench_bus [SUBS=1000] [SECS=3]\n");
        return 2;
    }
    srand(42);
    for (int f = 0; f < FAMILIES; f++) {
        snprintf(families[f], sizeof families[f], "%s%d", family_words[f % 10], f / 10);
    }

    af_bus_t *bus = af_bus_inproc_new();
    spec_t *specs = calloc((size_t)nsubs, sizeof *specs);
    uint64_t matches = 0;
    for (int i = 0; i < nsubs; i++) {
        make_spec(&specs[i], i);
        uint64_t id;
        af_error_t err = {0};
        if (af_bus_subscribe(bus, specs[i].pattern, specs[i].where, counted, &matches, &id, &err) !=
                0 ||
            af_predicate_compile(specs[i].where, &specs[i].pred, &err) != 0) {
            fprintf(stderr, "subscribe '%s': %s\n", specs[i].pattern, err.msg);
            return 1;
        }
    }

    static char types[NEVENTS][64], ids[NEVENTS][16];
    static af_bus_event_t events[NEVENTS];
    for (int i = 0; i < NEVENTS; i++) {
        snprintf(types[i], sizeof types[i], "%s.%s", families[rand() % FAMILIES],
                 actions[rand() % 4]);
        snprintf(ids[i], sizeof ids[i], "ev-%d", i);
        events[i] = (af_bus_event_t){
            .id = ids[i], .type = types[i], .data = make_data(i), .at = af_wall_ms()};
    }

    /* the bus */
    uint64_t published = 0;
    double t0 = af_mono_ms(), elapsed;
    do {
        for (int i = 0; i < 1024; i++) {
            if (af_bus_publish(bus, &events[published++ % NEVENTS]) < 0) {
                fprintf(stderr, "publish failed\n");
                return 1;
            }
        }
    } while ((elapsed = (af_mono_ms() - t0) / 1000) < secs);
    double per_event = (double)matches / (double)published;
    printf("bench_bus: %d subscriptions, %d event types, %.1fs on one thread\n", nsubs,
           FAMILIES * 4, elapsed);
    printf("  indexed: %.0f events/s, %.0f matches/s, %.2f subscriptions matched per event, "
           "match fraction %.3f%%\n",
           (double)published / elapsed, (double)matches / elapsed, per_event,
           100 * per_event / nsubs);

    /* the same work as a naive loop over every subscription, for comparison */
    uint64_t naive_events = 0, naive_matches = 0;
    double naive_secs = secs < 1 ? secs : 1;
    t0 = af_mono_ms();
    do {
        for (int i = 0; i < 256; i++) {
            const af_bus_event_t *ev = &events[naive_events++ % NEVENTS];
            for (int k = 0; k < nsubs; k++) {
                if (af_event_type_match(specs[k].pattern, ev->type) &&
                    af_predicate_eval(specs[k].pred, ev->data)) {
                    counted(&naive_matches, ev);
                }
            }
        }
    } while ((elapsed = (af_mono_ms() - t0) / 1000) < naive_secs);
    printf("  naive:   %.0f events/s, %.0f matches/s, %.2f subscriptions matched per event\n",
           (double)naive_events / elapsed, (double)naive_matches / elapsed,
           (double)naive_matches / (double)naive_events);

    for (int i = 0; i < NEVENTS; i++) {
        json_decref(events[i].data);
    }
    for (int i = 0; i < nsubs; i++) {
        json_decref(specs[i].where);
        af_predicate_free(specs[i].pred);
    }
    free(specs);
    af_bus_free(bus);
    return 0;
}
