package gateway

import (
	"context"
	"errors"
	"sync"
	"time"
)

// job is the work for one batch. Everything but done is written by the
// goroutine running it before done is closed, and only read after.
type job struct {
	key  string // jobKey of the function and batch id, "" without a batch id
	rows int    // rows admitted against the in-flight cap
	// digest is batch.digest of the rows the job answers; 0 when the job
	// came from the shared store and its rows are not known here.
	digest uint64
	// async is set (under jobTable.mu) once a POST has answered 202 for it.
	async bool
	// mayAsync: the batch's protocol polls (jobSpec.async).
	mayAsync bool
	// shared is how the job stands with Config.Shared; set at start.
	shared claimState
	// Under jobTable.mu, used with Config.Shared only: waiters counts the
	// POSTs waiting for the job here, unheard records that none was when
	// it finished, keep that its answer belongs in the store, and keptGen
	// the store generation it was last kept under (0: not yet).
	waiters int
	unheard bool
	keep    bool
	keptGen uint64

	// compress asks the adapter to keep a 200 answer gzipped: set before
	// the work starts, when the POST that started the job accepts gzip (as
	// Snowflake's do) and no shared store wants the answer as JSON. The
	// answer is then compressed once, not on every retry and poll, and
	// kept in a fraction of the memory.
	compress bool

	// stopRenew ends the renewal of this replica's claim (nil: none).
	stopRenew func()

	// Under jobTable.mu: holds counts the requests that may still send the
	// answer (Begin and Poll take one, Release gives it back), dropped
	// that the table no longer keeps the job, and cost the bytes it counts
	// against the byte cap. A body from a pool goes back to it once the
	// job is dropped and nothing holds it.
	holds   int
	dropped bool
	cost    int64

	done    chan struct{}
	answer  // set by Finish before done is closed
	expires time.Time
}

// sameRows reports whether a batch with this digest may share j's answer:
// either digest is unknown (0), or they match.
func (j *job) sameRows(digest uint64) bool {
	return j.digest == 0 || digest == 0 || j.digest == digest
}

// failed reports whether j is done with an answer other than 200. Such an
// answer is kept for a poll to collect, but a POST of the same batch (a
// retry) starts the work again.
func (j *job) failed() bool {
	select {
	case <-j.done:
		return j.status != 200
	default:
		return false
	}
}

// jobKey scopes a batch id to one function.
func jobKey(path, batchID string) string {
	if batchID == "" {
		return ""
	}
	return path + " " + batchID
}

var (
	errDraining   = errors.New("shutting down: retry on another replica")
	errOverloaded = errors.New("overloaded")
	// errReused: a batch id already answered or running for other rows.
	// Snowflake never does that; answering the other rows would be wrong.
	errReused = errors.New("this sf-external-function-query-batch-id was already used for a batch with other rows; batch ids must be unique per batch")
)

// jobTable tracks running jobs (for the in-flight cap, idempotency and the
// drain) and keeps finished answers by batch id for the result TTL.
type jobTable struct {
	ttl      time.Duration
	maxRows  int
	maxKept  int
	maxBytes int64
	onChange func(rowsInFlight, asyncRunning, kept int) // metrics hook

	mu           sync.Mutex // guards the fields below; never held across I/O
	byKey        map[string]*job
	kept         []*job // finished jobs in byKey, oldest first (so by expiry)
	keptHead     int    // kept[:keptHead] are already gone
	keptBytes    int64
	rowsInFlight int
	running      int
	asyncRunning int
	draining     bool
	idle         chan struct{} // closed when draining and nothing runs
}

func newJobTable(ttl time.Duration, maxRows, maxKept int, maxBytes int64, onChange func(int, int, int)) *jobTable {
	return &jobTable{
		ttl: ttl, maxRows: maxRows, maxKept: maxKept, maxBytes: maxBytes, onChange: onChange,
		byKey: map[string]*job{},
		idle:  make(chan struct{}),
	}
}

// start returns the job already known under key (started == false), or
// admits a new job of rows rows, standing as st with the shared store
// (started == true). A batch bigger than the whole cap is admitted when
// nothing else runs, so it cannot be refused forever. Errors: errDraining,
// errOverloaded, errReused.
func (t *jobTable) start(spec jobSpec, now time.Time, st claimState) (j *job, started bool, err error) {
	key, rows, digest := spec.key, spec.rows, spec.digest
	t.mu.Lock()
	defer t.mu.Unlock()
	if old := t.lookup(key, now); old != nil && !old.failed() {
		if !old.sameRows(digest) {
			return nil, false, errReused
		}
		old.holds++
		return old, false, nil
	}
	if t.draining {
		return nil, false, errDraining
	}
	if t.rowsInFlight > 0 && t.rowsInFlight+rows > t.maxRows {
		return nil, false, errOverloaded
	}
	j = &job{key: key, rows: rows, digest: digest, mayAsync: spec.async, shared: st, done: make(chan struct{}), holds: 1}
	t.rowsInFlight += rows
	t.running++
	if key != "" {
		t.byKey[key] = j
	}
	t.changed()
	return j, true, nil
}

// get returns the job known under key, running or finished, or nil.
func (t *jobTable) get(key string, now time.Time) *job {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lookup(key, now)
}

// hold is get, holding the job it returns (see Release).
func (t *jobTable) hold(key string, now time.Time) *job {
	t.mu.Lock()
	defer t.mu.Unlock()
	j := t.lookup(key, now)
	if j != nil {
		j.holds++
	}
	return j
}

// release gives back a hold on j (nil: none).
func (t *jobTable) release(j *job) {
	if j == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	j.holds--
	t.giveBack(j)
}

// giveBack hands a dropped job's body to answer.free once nothing holds
// it. The body is cleared, so a stray reader would find it empty rather
// than another batch's answer.
func (t *jobTable) giveBack(j *job) {
	if !j.dropped || j.holds > 0 || j.free == nil || j.body == nil {
		return
	}
	j.free(j.body)
	j.body, j.free = nil, nil
}

func (t *jobTable) lookup(key string, now time.Time) *job {
	if key == "" {
		return nil
	}
	j := t.byKey[key]
	if j == nil || (!j.expires.IsZero() && now.After(j.expires)) {
		return nil
	}
	return j
}

// isAsync reports whether a POST has answered 202 for j so far.
func (t *jobTable) isAsync(j *job) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return j.async
}

// markAsync records that a POST is about to answer 202 for j, for the
// async gauge and the shared store. It returns false, marking nothing, if j
// is done already: the POST should answer with its result instead.
func (t *jobTable) markAsync(j *job) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	select {
	case <-j.done:
		return false
	default:
	}
	if !j.async {
		j.async = true
		t.asyncRunning++
		t.changed()
	}
	return true
}

// wait counts a POST starting (+1) or ending (-1) its wait for j.
func (t *jobTable) wait(j *job, delta int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	j.waiters += delta
}

// audience reports, for a finished job, whether it went asynchronous and
// whether nobody was waiting for it here when it finished.
func (t *jobTable) audience(j *job) (async, unheard bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return j.async, j.unheard
}

// setKept records that j's answer belongs in the shared store, and, if ok,
// that it was kept there under generation gen.
func (t *jobTable) setKept(j *job, gen uint64, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	j.keep = true
	if ok {
		j.keptGen = gen
	}
}

// pending is a kept answer to hand to the shared store again.
type pending struct {
	j   *job
	ttl time.Duration // what is left of its result TTL
}

// unpublished lists the finished answers that belong in the shared store
// but were not kept there under generation gen.
func (t *jobTable) unpublished(gen uint64, now time.Time) []pending {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []pending
	for _, j := range t.kept[t.keptHead:] {
		if j.keep && j.keptGen != gen && j.expires.After(now) {
			out = append(out, pending{j: j, ttl: j.expires.Sub(now)})
		}
	}
	return out
}

// finish publishes j's answer (set by the caller) and keeps it for the TTL
// under its key, unless it alone is over the byte cap.
func (t *jobTable) finish(j *job, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.rowsInFlight -= j.rows
	t.running--
	j.unheard = j.waiters == 0
	if j.async {
		t.asyncRunning--
	}
	if j.shared != claimNone {
		// The shared store is handed the body after this, outside the
		// lock (batches.release, republish): it is never reused.
		j.free = nil
	}
	j.cost = int64(len(j.body))
	if j.free != nil { // its whole buffer stays
		j.cost = int64(cap(j.body))
	}
	switch {
	case j.key == "":
		j.dropped = true
	case j.cost <= t.maxBytes:
		j.expires = now.Add(t.ttl)
		t.kept = append(t.kept, j)
		t.keptBytes += j.cost
		t.evict(now, false)
	default:
		delete(t.byKey, j.key)
		j.dropped = true
	}
	close(j.done)
	if t.draining && t.running == 0 {
		t.closeIdle()
	}
	t.changed()
}

// sweep forgets expired answers.
func (t *jobTable) sweep(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.evict(now, true)
	t.changed()
}

// evict drops kept answers from the oldest while they are expired (when
// expired is true) or over the count or byte caps.
func (t *jobTable) evict(now time.Time, expired bool) {
	for t.keptHead < len(t.kept) {
		j := t.kept[t.keptHead]
		over := len(t.kept)-t.keptHead > t.maxKept || t.keptBytes > t.maxBytes
		if !over && (!expired || !now.After(j.expires)) {
			break
		}
		if t.byKey[j.key] == j {
			delete(t.byKey, j.key)
		}
		t.keptBytes -= j.cost
		j.dropped = true
		t.giveBack(j)
		t.kept[t.keptHead] = nil
		t.keptHead++
	}
	// Reclaim the dead prefix once it is most of the slice.
	if t.keptHead > 64 && t.keptHead*2 > len(t.kept) {
		t.kept = append(t.kept[:0], t.kept[t.keptHead:]...)
		t.keptHead = 0
	}
}

// drain refuses new jobs from now on.
func (t *jobTable) drain() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.draining {
		return
	}
	t.draining = true
	if t.running == 0 {
		t.closeIdle()
	}
}

func (t *jobTable) closeIdle() {
	select {
	case <-t.idle:
	default:
		close(t.idle)
	}
}

func (t *jobTable) isDraining() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.draining
}

// waitIdle waits, after drain, until no job runs or ctx ends.
func (t *jobTable) waitIdle(ctx context.Context) error {
	select {
	case <-t.idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (t *jobTable) changed() {
	if t.onChange != nil {
		t.onChange(t.rowsInFlight, t.asyncRunning, len(t.kept)-t.keptHead)
	}
}
