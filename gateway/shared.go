package gateway

import (
	"context"
	"log/slog"
	"net/http"
	"time"
)

// JobStore keeps batches by job key where every replica sees them (package
// cluster keeps them in Redis), so that any replica answers any poll and a
// batch re-sent to another replica is not worked on twice. A replica claims
// a batch before working on it; the claim lapses unless renewed, so the
// batch of a replica that died is taken over by the next one it reaches.
// Any method may fail when the store cannot be reached: the gateway then
// works alone (see Config.Shared).
type JobStore interface {
	// Claim makes this replica the batch's owner for lease, unless a 200
	// answer is kept for it (returned) or another replica owns it
	// (running).
	Claim(ctx context.Context, key string, lease time.Duration) (answer []byte, running bool, err error)
	// Peek returns the answer kept for the batch and its status (0: none),
	// or running while another replica owns it (or may: a store that lost
	// its data recently cannot tell). want > 0 asks the owner to keep its
	// answer when it finishes, for that long.
	Peek(ctx context.Context, key string, want time.Duration) (status int, answer []byte, running bool, err error)
	// Renew extends this replica's claim by lease.
	Renew(ctx context.Context, key string, lease time.Duration) error
	// Release drops this replica's claim; with an answer (status > 0) it
	// first keeps it for ttl if keep is set or another replica wants it,
	// and reports whether it did.
	Release(ctx context.Context, key string, status int, answer []byte, keep bool, ttl time.Duration) (kept bool, err error)
	// Generation changes when the store comes back after being
	// unreachable: answers kept before may be lost and are kept again.
	Generation() uint64
}

// claimState is how a job stands with the shared store.
type claimState uint8

const (
	claimNone claimState = iota // no shared store, or no batch id
	claimHeld                   // this replica holds the batch's claim
	claimDown                   // the store was unreachable: the batch runs here, its claim made when it is back
)

const (
	defaultClaimLease = 10 * time.Second
	minClaimLease     = 30 * time.Millisecond
	// followFirst and followMax pace the checks on a batch another replica
	// works on.
	followFirst = 20 * time.Millisecond
	followMax   = 250 * time.Millisecond
	// republishEvery is how often answers the store may have lost are kept
	// again.
	republishEvery = time.Second
)

// Values of the result label of snowgate_gateway_shared_batches_total.
const (
	sharedClaimed     = "claimed"     // worked on here, claimed in the store
	sharedReplayed    = "replayed"    // answered from another replica's kept answer
	sharedFollowed    = "followed"    // another replica was working on it: waited for it
	sharedUnreachable = "unreachable" // the store did not answer: worked on here, shared once it is back
)

// settle decides, with the shared store, what happens to a new batch
// before it runs here: it returns an answer another replica kept, waits for
// a batch another replica works on (errPending or errElsewhere at
// BatchTimeout, errGone if ctx ends), or claims the batch for this replica.
func (e *batches) settle(ctx context.Context, key string, async bool, log *slog.Logger) (st claimState, kept *answer, err error) {
	var deadline *time.Timer
	defer func() {
		if deadline != nil {
			deadline.Stop()
		}
	}()
	claim := true
	for wait := followFirst; ; wait = min(2*wait, followMax) {
		var status int
		var body []byte
		var running bool
		if claim {
			body, running, err = e.cfg.Shared.Claim(ctx, key, e.cfg.ClaimLease)
			if body != nil {
				status = http.StatusOK
			}
		} else {
			status, body, running, err = e.cfg.Shared.Peek(ctx, key, e.cfg.ResultTTL)
		}
		switch {
		case err != nil && ctx.Err() != nil:
			return claimNone, nil, errGone
		case err != nil:
			e.storeDown(log, err)
			return claimDown, nil, nil
		case status == http.StatusOK:
			e.storeUp()
			e.met.shared.WithLabelValues(sharedReplayed).Inc()
			return claimNone, &answer{status: status, body: body}, nil
		case claim && !running:
			e.storeUp()
			e.met.shared.WithLabelValues(sharedClaimed).Inc()
			return claimHeld, nil, nil
		}
		e.storeUp()
		// Peek found a failed answer (a re-sent batch runs again) or no
		// owner any more (it died): claim it, at once.
		if claim = !running; claim {
			continue
		}
		if deadline == nil {
			e.met.shared.WithLabelValues(sharedFollowed).Inc()
			deadline = time.NewTimer(e.cfg.BatchTimeout)
		}
		if err = e.pause(ctx, deadline.C, wait, async); err != nil {
			return claimNone, nil, err
		}
	}
}

// pause waits between two checks on a batch another replica works on. At
// the deadline it gives up: errPending with Async for a protocol that polls
// (the poll will find the answer the owner keeps for this replica), else
// errElsewhere.
func (e *batches) pause(ctx context.Context, deadline <-chan time.Time, wait time.Duration, async bool) error {
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-deadline:
		if e.cfg.Async && async {
			return errPending
		}
		return errElsewhere
	case <-ctx.Done():
		return errGone
	}
}

// pollShared answers a poll for a batch this replica does not know.
func (e *batches) pollShared(ctx context.Context, key string) (answer, awaitStatus) {
	status, body, running, err := e.cfg.Shared.Peek(ctx, key, e.cfg.ResultTTL)
	switch {
	case err != nil || running:
		// Unreachable, it cannot tell: the caller polls again.
		return answer{}, awaitPending
	case status != 0:
		return answer{status: status, body: body}, awaitDone
	}
	return answer{}, awaitUnknown
}

// storeDown notes a shared store that did not answer; the first time in an
// outage it says so.
func (e *batches) storeDown(log *slog.Logger, err error) {
	e.met.shared.WithLabelValues(sharedUnreachable).Inc()
	if e.storeFailing.CompareAndSwap(false, true) {
		log.Warn("shared job store unreachable: each batch runs on the replica it reaches and its answer is shared "+
			"once the store is back; meanwhile polls reaching another replica get 202 and retried batches may run twice",
			"err", err.Error())
	}
}

func (e *batches) storeUp() {
	if e.storeFailing.Load() && e.storeFailing.CompareAndSwap(true, false) {
		e.log.Info("shared job store reachable again: batches are shared between replicas again")
	}
}

// renewClaim keeps this replica's claim on key alive until stop is called.
func (e *batches) renewClaim(key string) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(e.cfg.ClaimLease / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				_ = e.cfg.Shared.Renew(ctx, key, e.cfg.ClaimLease) // the store logs its outages
			}
		}
	}()
	return func() { cancel(); <-done }
}

// release hands a finished job's claim back to the store, keeping its
// answer there when a poll or a retry may come to another replica: the
// batch went asynchronous, or nobody here was waiting for it any more (the
// client left, so Snowflake will re-send it), or another replica asked. An
// answer the store could not take is handed over again by republish.
func (e *batches) release(j *job) {
	async, unheard := e.jobs.audience(j)
	keep := async || unheard
	gen := e.cfg.Shared.Generation()
	kept, err := e.cfg.Shared.Release(context.Background(), j.key, j.status, j.body, keep, e.cfg.ResultTTL)
	if keep || kept {
		e.jobs.setKept(j, gen, err == nil)
	}
}

// dropClaim gives up a claim on a batch that was not started after all.
func (e *batches) dropClaim(key string) {
	_, _ = e.cfg.Shared.Release(context.Background(), key, 0, nil, false, 0)
}

// republish keeps again the answers the store may have lost: those it
// could not take, and all of them after it came back from an outage.
func (e *batches) republish(ctx context.Context) {
	gen := e.cfg.Shared.Generation()
	for _, p := range e.jobs.unpublished(gen, time.Now()) {
		if _, err := e.cfg.Shared.Release(ctx, p.j.key, p.j.status, p.j.body, true, p.ttl); err != nil {
			return // still unreachable; next tick
		}
		e.jobs.setKept(p.j, gen, true)
	}
}
