package cache

import (
	"context"
	"sync/atomic"

	"github.com/snowgate/snowgate/locapi"
)

// Lookuper is the provider the resolver fills its cache from; *locapi.Client
// is one.
type Lookuper interface {
	Lookup(ctx context.Context, id string) (locapi.Result, error)
}

// LookupFunc adapts a function to a Lookuper.
type LookupFunc func(ctx context.Context, id string) (locapi.Result, error)

// Lookup calls f.
func (f LookupFunc) Lookup(ctx context.Context, id string) (locapi.Result, error) { return f(ctx, id) }

// Entry is an answer the provider gave, as it is cached. Entries are shared
// between callers and must not be modified.
type Entry struct {
	Status locapi.Status
	// Record is set for Found (and for NoLocation, with ID and Label only).
	Record *locapi.Record
	// JSON is Config.Encode's bytes for Record when Status is Found, nil
	// otherwise, made once with the entry so a hot batch copies bytes
	// instead of encoding. The cache only keeps them: their format is the
	// caller's (the gateway's VARIANT object).
	JSON []byte
	// Memo is for the consumer of JSON to keep what it derives from JSON
	// once (the gateway keeps the record's deflate form there). The cache
	// never reads or writes it.
	Memo atomic.Pointer[any]
}

// Outcome is the resolver's answer for one input ID: an Entry, or an error
// when the ID was invalid, the provider failed after its retries, or the
// caller's context ended first.
type Outcome struct {
	*Entry
	Err error
	// Hit is true when the answer came from the cache (this process's, or
	// the shared L2) without a provider call.
	Hit bool
}

// Stats describes one ResolveMany call, for the per-batch log line. Every
// distinct ID is counted in exactly one of Hits, Coalesced, Fetched,
// Invalid and Abandoned.
type Stats struct {
	IDs      int // input IDs
	Distinct int // distinct input IDs
	// Hits are distinct IDs answered from the cache (the L2 included),
	// also when the lookup this call started found them there.
	Hits   int
	L2Hits int // of Hits, those answered by the shared L2 (Config.L2)
	// Coalesced are distinct IDs that joined a lookup another caller had
	// started, whatever it found; its requests are that caller's.
	Coalesced int
	// Fetched are distinct IDs this call's own lookups asked the provider
	// about: the Lookuper was called and did not reject the ID.
	Fetched int
	// Invalid are distinct IDs this call's own lookups had rejected by the
	// Lookuper as invalid (locapi.ErrInvalidID): never sent.
	Invalid int
	// Abandoned are distinct IDs left unanswered because ctx ended or the
	// resolver closed first; a lookup they started may still finish.
	Abandoned int
	// Requests are the provider requests this call's own lookups sent,
	// every attempt (retries and 429s) included, as the Lookuper reports
	// them in locapi.Result.Requests (0 for one that does not), counted
	// for the lookups that finished before ResolveMany returned.
	Requests int
	Failed   int // distinct IDs that ended in an error (Invalid and Abandoned ones included)
}
