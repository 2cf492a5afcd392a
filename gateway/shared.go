package gateway

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
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
// before it runs here: it replays an answer another replica kept, waits for
// a batch another replica works on, or claims the batch for this replica.
// done is true when the request has been answered.
func (s *Server) settle(c *gin.Context, key string, log *slog.Logger) (st claimState, done bool) {
	ctx := c.Request.Context()
	var deadline *time.Timer
	defer func() {
		if deadline != nil {
			deadline.Stop()
		}
	}()
	claim := true
	for wait := followFirst; ; wait = min(2*wait, followMax) {
		var status int
		var answer []byte
		var running bool
		var err error
		if claim {
			answer, running, err = s.cfg.Shared.Claim(ctx, key, s.cfg.ClaimLease)
			if answer != nil {
				status = http.StatusOK
			}
		} else {
			status, answer, running, err = s.cfg.Shared.Peek(ctx, key, s.cfg.ResultTTL)
		}
		switch {
		case err != nil && ctx.Err() != nil:
			writeText(c, http.StatusServiceUnavailable, "client went away")
			return claimNone, true
		case err != nil:
			s.storeDown(log, err)
			return claimDown, false
		case status == http.StatusOK:
			s.storeUp()
			s.met.shared.WithLabelValues(sharedReplayed).Inc()
			s.met.batches.WithLabelValues(outcomeReplayed).Inc()
			s.write(c, status, answer)
			return claimNone, true
		case claim && !running:
			s.storeUp()
			s.met.shared.WithLabelValues(sharedClaimed).Inc()
			return claimHeld, false
		}
		s.storeUp()
		// Peek found a failed answer (a re-sent batch runs again) or no
		// owner any more (it died): claim it, at once.
		if claim = !running; claim {
			continue
		}
		if deadline == nil {
			s.met.shared.WithLabelValues(sharedFollowed).Inc()
			deadline = time.NewTimer(s.cfg.BatchTimeout)
		}
		if s.pause(c, deadline.C, wait) {
			return claimNone, true
		}
	}
}

// pause waits between two checks on a batch another replica works on. At
// the deadline it answers 202 (the poll will find the answer the owner
// keeps for this replica), or without Async a retryable 503; done is true
// when it answered.
func (s *Server) pause(c *gin.Context, deadline <-chan time.Time, wait time.Duration) (done bool) {
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return false
	case <-deadline:
		if s.cfg.Async {
			s.met.batches.WithLabelValues(outcomeAccepted).Inc()
			c.Status(http.StatusAccepted)
			c.Writer.WriteHeaderNow()
		} else {
			s.met.batches.WithLabelValues(outcomeFailed).Inc()
			writeText(c, http.StatusServiceUnavailable, "batch still running on another replica; retry")
		}
		return true
	case <-c.Request.Context().Done():
		writeText(c, http.StatusServiceUnavailable, "client went away")
		return true
	}
}

// pollShared answers a poll for a batch this replica does not know.
func (s *Server) pollShared(c *gin.Context, key, batchID string) {
	status, answer, running, err := s.cfg.Shared.Peek(c.Request.Context(), key, s.cfg.ResultTTL)
	switch {
	case err != nil || running:
		// Unreachable, it cannot tell: Snowflake polls again.
		c.Status(http.StatusAccepted)
		c.Writer.WriteHeaderNow()
	case status != 0:
		s.write(c, status, answer)
	default:
		writeText(c, http.StatusNotFound, "unknown batch id "+quoteID(batchID)+
			": never posted to any replica, or its answer expired (see --result-ttl)")
	}
}

// storeDown notes a shared store that did not answer; the first time in an
// outage it says so.
func (s *Server) storeDown(log *slog.Logger, err error) {
	s.met.shared.WithLabelValues(sharedUnreachable).Inc()
	if s.storeFailing.CompareAndSwap(false, true) {
		log.Warn("shared job store unreachable: each batch runs on the replica it reaches and its answer is shared "+
			"once the store is back; meanwhile polls reaching another replica get 202 and retried batches may run twice",
			"err", err.Error())
	}
}

func (s *Server) storeUp() {
	if s.storeFailing.Load() && s.storeFailing.CompareAndSwap(true, false) {
		s.log.Info("shared job store reachable again: batches are shared between replicas again")
	}
}

// renewClaim keeps this replica's claim on key alive until stop is called.
func (s *Server) renewClaim(key string) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(s.cfg.ClaimLease / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				_ = s.cfg.Shared.Renew(ctx, key, s.cfg.ClaimLease) // the store logs its outages
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
func (s *Server) release(j *job) {
	async, unheard := s.jobs.audience(j)
	keep := async || unheard
	gen := s.cfg.Shared.Generation()
	kept, err := s.cfg.Shared.Release(context.Background(), j.key, j.status, j.body, keep, s.cfg.ResultTTL)
	if keep || kept {
		s.jobs.setKept(j, gen, err == nil)
	}
}

// dropClaim gives up a claim on a batch that was not started after all.
func (s *Server) dropClaim(key string) {
	_, _ = s.cfg.Shared.Release(context.Background(), key, 0, nil, false, 0)
}

// republish keeps again the answers the store may have lost: those it
// could not take, and all of them after it came back from an outage.
func (s *Server) republish(ctx context.Context) {
	gen := s.cfg.Shared.Generation()
	for _, p := range s.jobs.unpublished(gen, time.Now()) {
		if _, err := s.cfg.Shared.Release(ctx, p.j.key, p.j.status, p.j.body, true, p.ttl); err != nil {
			return // still unreachable; next tick
		}
		s.jobs.setKept(p.j, gen, true)
	}
}
