package gateway

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"math/bits"
	"sort"
	"sync/atomic"

	"github.com/snowgate/snowgate/jsontext"
)

// A gzip encoder made for answers, because deflating them with
// klauspost's BestSpeed was about 70% of the gateway's CPU on a hot batch
// over HTTP (BenchmarkServeHTTP), more than HTTP and the client together.
//
// It trades some size for that time. Every answer is one deflate block
// with one fixed Huffman code (built once, from a model of answers), so:
//   - each found record's bits are made once, the first time the record is
//     sent, and kept beside the cached record (cache.Entry.Memo); an answer
//     copies them with a shift;
//   - the nine keys of a record are not sent as bytes but as back
//     references to the same key in the record before (every record has the
//     same keys in the same order);
//   - everything else (row numbers, nulls, other values) is sent as
//     literals.
//
// There is no other matching, so values repeated between records (a city,
// a country) are sent again, where an LZ77 encoder would find them: the
// answers come out about half as small as BestSpeed's instead of a fifth
// (BenchmarkAnswerGzip gives the figures), for a tenth of its time.

// Deflate's alphabets (RFC 1951, 3.2.5).
const (
	numLitLen = 286 // literals 0-255, end of block 256, lengths 257-285
	numDist   = 30
	endBlock  = 256
	maxBits   = 15
	window    = 32768
)

// code is a Huffman code ready to write: its bits reversed, since deflate
// writes codes from their most significant bit but packs bits from the
// least significant.
type code struct {
	bits uint16
	n    uint8
}

var (
	lengthBase  = [29]uint16{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	lengthExtra = [29]uint8{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	distBase    = [30]uint16{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	distExtra   = [30]uint8{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
	// clOrder is the order code-length code lengths are sent in.
	clOrder = [19]uint8{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}
)

// recordKeys are EncodeRecord's keys, in its order: a found record is
// key, value, key, value, ..., and a closing brace.
var recordKeys = [...]string{`{"id":`, `,"label":`, `,"geo_label":`, `,"street_address":`, `,"city_label":`,
	`,"postal_code":`, `,"country_label":`, `,"latitude":`, `,"longitude":`}

// answerModel is what the fixed code is fitted to: answers are mostly
// these bytes, keys aside (they go as back references).
const answerModel = `[0,{"id":"Q0000123","label":"Entity Q0000123","geo_label":"Warsaw, Masovian Voivodeship, Poland",` +
	`"street_address":"ul. Marszałkowska 104","city_label":"Warsaw","postal_code":"00-001","country_label":"Poland",` +
	`"latitude":52.2297,"longitude":21.0122}],[1,null],[2,{"id":"7734412","label":"Musée du Louvre","geo_label":` +
	`"Paris, Île-de-France","street_address":"Rue de Rivoli 99","city_label":"Paris","postal_code":"75001",` +
	`"country_label":"France","latitude":48.8606,"longitude":2.3376}],[3,{"id":"A-99","label":"東京タワー",` +
	`"geo_label":"Tokyo","street_address":"4 Chome-2-8 Shibakoen","city_label":"Minato City","postal_code":` +
	`"105-0011","country_label":"Japan","latitude":35.6586,"longitude":139.7454}]`

// fixed is the one code every answer is written with, and the block
// header that tells it to the decoder.
var fixed = newFixedCode()

type fixedCode struct {
	lit    [numLitLen]code
	dist   [numDist]code
	header bitString // BFINAL, BTYPE = dynamic, and the code's description
	keys   [len(recordKeys)]keyCode
	// keyBits are the keys as literals, for a record with no record before
	// it in the window.
	keyBits [len(recordKeys)]bitString
}

// keyCode is a back reference's length part for one key.
type keyCode struct {
	bits uint32
	n    uint8
	len  int
}

// bitString is a run of bits, packed from the least significant bit of
// b[0] on.
type bitString struct {
	b []byte
	n int // bits
}

func newFixedCode() *fixedCode {
	var litFreq [numLitLen]int
	var distFreq [numDist]int
	for i := range litFreq {
		litFreq[i] = 1 // every symbol gets a code: the code is complete
	}
	for i := range distFreq {
		distFreq[i] = 1
	}
	for i := 0; i < len(answerModel); i++ {
		litFreq[answerModel[i]] += 40
	}
	for c := 257; c < numLitLen; c++ {
		litFreq[c] = 1
	}
	for _, k := range recordKeys { // one reference per key per record
		litFreq[257+lengthCode(len(k))] += 200
	}
	for c := 8; c < 18; c++ { // distances of 17 to 1,024: the record before
		distFreq[c] += 400
	}
	f := &fixedCode{}
	litLens := huffmanLengths(litFreq[:], maxBits)
	distLens := huffmanLengths(distFreq[:], maxBits)
	canonical(litLens, f.lit[:])
	canonical(distLens, f.dist[:])
	f.header = blockHeader(litLens, distLens)
	for i, k := range recordKeys {
		lc := lengthCode(len(k))
		c := f.lit[257+lc]
		f.keys[i] = keyCode{bits: uint32(c.bits) | uint32(len(k)-int(lengthBase[lc]))<<c.n, n: c.n + lengthExtra[lc], len: len(k)}
		var w bitWriter
		w.literals(f, []byte(k))
		f.keyBits[i] = w.finish()
	}
	return f
}

// lengthCode is the length symbol (less 257) for a match of n bytes.
func lengthCode(n int) int {
	c := sort.Search(len(lengthBase), func(i int) bool { return int(lengthBase[i]) > n }) - 1
	if n == 258 {
		return 28
	}
	return c
}

// distCodes maps a distance to its symbol.
var distCodes = func() *[window + 1]uint8 {
	var t [window + 1]uint8
	for d := 1; d <= window; d++ {
		t[d] = uint8(sort.Search(len(distBase), func(i int) bool { return int(distBase[i]) > d }) - 1)
	}
	return &t
}()

// distCode is the distance symbol for a distance of d bytes.
func distCode(d int) int { return int(distCodes[d]) }

// huffmanLengths gives each symbol a code length of at most limit, from
// its frequency (all frequencies at least 1). A code longer than limit is
// avoided by flattening the frequencies and building again.
func huffmanLengths(freq []int, limit int) []uint8 {
	f := append([]int(nil), freq...)
	for {
		lens := huffman(f)
		if slicesMax(lens) <= uint8(limit) {
			return lens
		}
		for i := range f {
			f[i] = f[i]/2 + 1
		}
	}
}

func slicesMax(s []uint8) uint8 {
	var m uint8
	for _, v := range s {
		m = max(m, v)
	}
	return m
}

// huffman is the textbook construction: merge the two lightest trees
// until one is left; a symbol's length is its leaf's depth.
func huffman(freq []int) []uint8 {
	type node struct {
		w           int
		left, right int // children's indexes, -1 for a leaf
	}
	nodes := make([]node, 0, 2*len(freq))
	live := make([]int, 0, len(freq))
	for i, w := range freq {
		nodes = append(nodes, node{w, -1, -1})
		live = append(live, i)
	}
	for len(live) > 1 {
		sort.Slice(live, func(a, b int) bool { return nodes[live[a]].w < nodes[live[b]].w })
		a, b := live[0], live[1]
		nodes = append(nodes, node{nodes[a].w + nodes[b].w, a, b})
		live = append(live[2:], len(nodes)-1)
	}
	lens := make([]uint8, len(freq))
	var walk func(i int, depth uint8)
	walk = func(i int, depth uint8) {
		if nodes[i].left < 0 {
			lens[i] = depth
			return
		}
		walk(nodes[i].left, depth+1)
		walk(nodes[i].right, depth+1)
	}
	walk(live[0], 0)
	return lens
}

// canonical assigns deflate's canonical codes to the lengths (RFC 1951,
// 3.2.2), reversed for writing.
func canonical(lens []uint8, out []code) {
	var count [maxBits + 1]int
	for _, l := range lens {
		count[l]++
	}
	count[0] = 0
	var next [maxBits + 2]int
	c := 0
	for l := 1; l <= maxBits; l++ {
		c = (c + count[l-1]) << 1
		next[l] = c
	}
	for s, l := range lens {
		if l == 0 {
			continue
		}
		out[s] = code{bits: bits.Reverse16(uint16(next[l])) >> (16 - l), n: l}
		next[l]++
	}
}

// blockHeader describes a dynamic block with these code lengths: the
// lengths are sent one by one (no run-length codes) in a code-length code
// of their own.
func blockHeader(litLens, distLens []uint8) bitString {
	all := append(append([]uint8(nil), litLens...), distLens...)
	clFreq := make([]int, 19)
	for _, l := range all {
		clFreq[l]++
	}
	// Only the lengths that occur get a code; two at least, so the
	// code-length code is complete.
	used := 0
	for _, f := range clFreq {
		if f > 0 {
			used++
		}
	}
	clLens := make([]uint8, 19)
	if used >= 2 {
		idx := []int{}
		w := []int{}
		for s, f := range clFreq {
			if f > 0 {
				idx, w = append(idx, s), append(w, f)
			}
		}
		for i, l := range huffmanLengths(w, 7) {
			clLens[idx[i]] = l
		}
	}
	clCodes := make([]code, 19)
	canonical(clLens, clCodes)
	var bw bitWriter
	bw.write(1, 1) // BFINAL: the answer is one block
	bw.write(2, 2) // BTYPE: dynamic Huffman codes
	bw.write(uint64(len(litLens)-257), 5)
	bw.write(uint64(len(distLens)-1), 5)
	bw.write(19-4, 4)
	for _, s := range clOrder {
		bw.write(uint64(clLens[s]), 3)
	}
	for _, l := range all {
		bw.write(uint64(clCodes[l].bits), uint(clCodes[l].n))
	}
	return bw.finish()
}

// bitWriter packs bits from the least significant on, into out, which
// grows in bounds of at least 16 bytes ahead: every write stores 8 bytes
// whole and keeps fewer than 8 bits back.
type bitWriter struct {
	out []byte
	acc uint64
	n   uint
}

// room makes sure out has space for at least n more bytes, plus the 8 a
// store may write past the end.
func (w *bitWriter) room(n int) {
	if cap(w.out)-len(w.out) < n+16 {
		grown := make([]byte, len(w.out), 2*cap(w.out)+n+16)
		copy(grown, w.out)
		w.out = grown
	}
}

// write adds the n (at most 56) low bits of v.
func (w *bitWriter) write(v uint64, n uint) {
	w.room(8)
	c, buf := w.cursor()
	w.set(c.put(buf, v, n))
}

// cursor is a bitWriter's state as a value, for the loops that write
// most of an answer: through *bitWriter, acc and n live in memory and
// every put stores them and loads them back, where a local cursor stays in
// registers (with the one-allocation entryMemo, BenchmarkAnswerGzip took
// about a tenth less time).
// buf is out at its full capacity; the caller made room.
type cursor struct {
	acc uint64
	n   uint // bits in acc, fewer than 8 between puts
	end int  // bytes of buf written
}

func (w *bitWriter) cursor() (cursor, []byte) {
	return cursor{acc: w.acc, n: w.n, end: len(w.out)}, w.out[:cap(w.out)]
}

// set takes back the state of a cursor got from w.
func (w *bitWriter) set(c cursor) { w.out, w.acc, w.n = w.out[:c.end], c.acc, c.n }

// put adds the n (at most 56) low bits of v, and stores the whole bytes.
func (c cursor) put(buf []byte, v uint64, n uint) cursor {
	c.acc |= v << (c.n & 63)
	c.n += n
	binary.LittleEndian.PutUint64(buf[c.end:c.end+8], c.acc)
	k := c.n >> 3 // at most 7: c.n is at most 63
	c.end += int(k)
	c.acc >>= (k * 8) & 63
	c.n &= 7
	return c
}

// literals writes p byte by byte in the fixed code.
func (w *bitWriter) literals(f *fixedCode, p []byte) {
	w.room(2 * len(p)) // no code is longer than 15 bits
	c, buf := w.cursor()
	w.set(c.literals(buf, f, p))
}

func (c cursor) literals(buf []byte, f *fixedCode, p []byte) cursor {
	for _, b := range p {
		lc := f.lit[b]
		c.acc |= uint64(lc.bits) << (c.n & 63)
		c.n += uint(lc.n)
		if c.n >= 48 {
			c = c.put(buf, 0, 0)
		}
	}
	return c.put(buf, 0, 0)
}

// bitString writes s, 56 bits at a time: s.b has 8 bytes to spare at its
// end, so every load is whole. The caller made room for len(s.b) bytes.
func (w *bitWriter) bitString(s bitString) {
	c, buf := w.cursor()
	w.set(c.bitsFrom(buf, s, 0, s.n))
}

// finish flushes the bits into whole bytes, the last one padded with 0s,
// and pads the result with 8 bytes (past its length) for bitString.
func (w *bitWriter) finish() bitString {
	n := len(w.out)*8 + int(w.n)
	w.room(8)
	if w.n > 0 {
		w.n = 8
		c, buf := w.cursor()
		w.set(c.put(buf, 0, 0))
	}
	return bitString{b: w.out[: len(w.out) : len(w.out)+8], n: n}
}

// packedRecord is a found record's encoding in the fixed code: the bits
// of each value between its keys (with the closing brace after the last),
// one after another in bits, value i from bit off[i] to off[i+1]. When the
// record is not shaped as EncodeRecord makes them, whole holds all its
// bytes as literals instead. crc and xpow let gzipFast add the record to
// its checksum without reading its bytes (crcCombine).
type packedRecord struct {
	bits  bitString
	off   [len(recordKeys) + 1]int
	vlen  [len(recordKeys)]int // the values' lengths in bytes
	whole *bitString
	size  int
	crc   uint32 // CRC-32 of the record's JSON
	xpow  uint32 // crcPow(size)
}

// packRecord encodes a record's JSON once, for every answer after.
func packRecord(js []byte) *packedRecord {
	p := &packedRecord{size: len(js), crc: crc32.ChecksumIEEE(js), xpow: crcPow(len(js))}
	at := 0
	var ends [len(recordKeys) + 1]int // value i is js[ends[i]-vlen[i]:ends[i]]
	var starts [len(recordKeys)]int
	for i, k := range recordKeys {
		// A key cannot occur inside a string value: its quotes would be
		// escaped there.
		j := indexFrom(js, k, at)
		if j < 0 || (i == 0 && j != 0) {
			var w bitWriter
			w.literals(fixed, js)
			s := w.finish()
			p.whole = &s
			return p
		}
		if i > 0 {
			ends[i-1] = j
		}
		starts[i] = j + len(k)
		at = starts[i]
	}
	ends[len(recordKeys)-1] = len(js)
	var w bitWriter
	for i := range recordKeys {
		v := js[starts[i]:ends[i]]
		w.literals(fixed, v)
		p.vlen[i] = len(v)
		p.off[i+1] = len(w.out)*8 + int(w.n)
	}
	p.bits = w.finish()
	return p
}

func indexFrom(b []byte, s string, from int) int {
	if i := bytes.Index(b[from:], []byte(s)); i >= 0 {
		return from + i
	}
	return -1
}

// span is where a found record's JSON was copied into an answer, so the
// encoder can send its packed form instead of its bytes.
type span struct {
	at     int // offset in the answer
	memo   *atomic.Pointer[any]
	js     []byte
	packed *packedRecord // set by gzipFast
}

// deflater writes one answer's deflate stream.
type deflater struct {
	w    bitWriter
	pos  int                  // bytes of the answer encoded so far
	keys [len(recordKeys)]int // where the last record's keys start, -1 for none
}

// gzipFast returns body gzipped (RFC 1952), reading the records at spans
// from their packed forms. A sparse body holds only the bytes between the
// records (encodeAnswer).
func gzipFast(body []byte, spans []span, sparse bool, out []byte) []byte {
	out = append(out, 0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255) // no name, no time, OS unknown
	d := deflater{w: bitWriter{out: out}}
	for i := range d.keys {
		d.keys[i] = -window - 1
	}
	d.w.room(len(fixed.header.b))
	d.w.bitString(fixed.header)
	packAll(spans)
	var crc uint32
	at := 0 // in body
	for _, s := range spans {
		gap := body[at:s.at]
		d.w.literals(fixed, gap)
		d.pos += len(gap)
		crc = crc32.Update(crc, crc32.IEEETable, gap)
		p := s.packed
		d.record(p)
		crc = crcCombine(crc, p.crc, p.xpow)
		at = s.at
		if !sparse {
			at += len(s.js)
		}
	}
	d.w.literals(fixed, body[at:])
	d.pos += len(body) - at
	crc = crc32.Update(crc, crc32.IEEETable, body[at:])
	eob := fixed.lit[endBlock]
	d.w.write(uint64(eob.bits), uint(eob.n))
	d.w.finish()
	out = d.w.out // not finish's slice: its capacity is cut short
	out = binary.LittleEndian.AppendUint32(out, crc)
	return binary.LittleEndian.AppendUint32(out, uint32(d.pos))
}

// packAll finds every span's packed record before any is written. The
// records of a hot answer are all over the heap, and each is a chain of
// loads (entry, memo, packed record, its bits) that mostly miss the CPU's
// caches: taken one record at a time, every miss stalls the encoder, while
// this loop, whose iterations do not depend on each other, has many in
// flight at once. It also touches each record's bits for the same reason.
func packAll(spans []span) {
	var touch byte
	for i := range spans {
		p := packedOf(spans[i])
		spans[i].packed = p
		if p.whole == nil {
			touch |= p.bits.b[0]
		}
	}
	packSink.Store(uint32(touch))
}

// packSink keeps packAll's reads from being optimized away.
var packSink atomic.Uint32

// packedOf is the span's record packed, made and kept on first use.
func packedOf(s span) *packedRecord {
	m := memoOf(s.memo)
	if p := m.packed.Load(); p != nil {
		return p
	}
	p := packRecord(s.js)
	if !m.packed.CompareAndSwap(nil, p) {
		return m.packed.Load() // another answer packed it first: share that
	}
	return p
}

// entryMemo is what the gateway keeps beside a cached record (in
// cache.Entry.Memo), each part made the first time it is needed. The
// memo points into it (self), which saves the load of a separate box for
// the any. It stays small: with the packed record held in it by value,
// 4,096 memos no longer fit the CPU's caches and BenchmarkRedshiftOfServeHot
// (which reads only quoted) took 7% more CPU, for no gain in gzip answers.
type entryMemo struct {
	self   any                          // what cache.Entry.Memo points to: this memo
	quoted atomic.Pointer[[]byte]       // the record as a JSON string (Redshift's VARCHAR)
	packed atomic.Pointer[packedRecord] // for gzipFast
}

// memoOf returns the memo kept in m, putting a new one there first if
// there is none.
func memoOf(m *atomic.Pointer[any]) *entryMemo {
	for {
		if v := m.Load(); v != nil {
			em, ok := (*v).(*entryMemo)
			if !ok { // not ours: work without keeping anything
				return &entryMemo{}
			}
			return em
		}
		em := &entryMemo{}
		em.self = em
		if m.CompareAndSwap(nil, &em.self) {
			return em
		}
	}
}

// quotedJSON is js (the record's JSON) as a JSON string, made once.
func (m *entryMemo) quotedJSON(js []byte) []byte {
	if q := m.quoted.Load(); q != nil {
		return *q
	}
	q := jsontext.AppendString(nil, string(js), false)
	m.quoted.Store(&q)
	return q
}

// record writes one packed record: each key a back reference to the same
// key in the record before when that is in the window, else literals.
func (d *deflater) record(p *packedRecord) {
	// Literals take at most 15 bits a byte; a key at most 47.
	d.w.room(2*p.size + len(recordKeys)*8)
	if p.whole != nil {
		d.w.bitString(*p.whole)
		d.pos += p.size
		for i := range d.keys {
			d.keys[i] = -window - 1
		}
		return
	}
	c, buf := d.w.cursor()
	pos := d.pos
	for i := range recordKeys {
		k := &fixed.keys[i]
		if dist := pos - d.keys[i]; dist <= window {
			dc := distCode(dist)
			dl := fixed.dist[dc]
			// The reference and the value's first bits go in one store.
			ref := uint64(k.bits) | (uint64(dl.bits)|uint64(dist-int(distBase[dc]))<<dl.n)<<k.n
			n := uint(k.n) + uint(dl.n) + uint(distExtra[dc])
			from, to := p.off[i], p.off[i+1]
			first := min(to-from, 56-int(n))
			c = c.put(buf, ref|bitsAt(p.bits, from, first)<<(n&63), n+uint(first))
			c = c.bitsFrom(buf, p.bits, from+first, to)
		} else {
			c = c.bitsFrom(buf, fixed.keyBits[i], 0, fixed.keyBits[i].n)
			c = c.bitsFrom(buf, p.bits, p.off[i], p.off[i+1])
		}
		d.keys[i] = pos
		pos += k.len + p.vlen[i]
	}
	d.pos = pos
	d.w.set(c)
}

// bitsAt is the n (at most 56) bits of s from bit off on.
func bitsAt(s bitString, off, n int) uint64 {
	full := s.b[:cap(s.b)]
	return binary.LittleEndian.Uint64(full[off>>3:]) >> (off & 7) & (1<<(uint(n)&63) - 1)
}

// bitsFrom writes s's bits from bit off to bit end.
func (c cursor) bitsFrom(buf []byte, s bitString, off, end int) cursor {
	for ; off < end; off += 56 {
		k := min(end-off, 56)
		c = c.put(buf, bitsAt(s, off, k), uint(k))
	}
	return c
}

// The CRC-32 of a||b from the CRC-32s of a and b, without reading either
// (as zlib's crc32_combine): crc(a||b) = crc(a)·x^(8·len(b)) + crc(b) in
// GF(2)[x] modulo the CRC polynomial. A record's crc and x^(8·len) are
// kept in its packedRecord, so a hot answer's checksum costs one
// multiplication a record instead of a pass over its bytes.

// crcCombine is the CRC-32 of a||b, given crcA, crcB and xpow =
// crcPow(len(b)).
func crcCombine(crcA, crcB, xpow uint32) uint32 { return gfMul(xpow, crcA) ^ crcB }

// gfMul multiplies a and b modulo the CRC-32 polynomial, in hash/crc32's
// reflected bit order (bit 31 is x^0), four bits of a at a time: there is
// a product per record in every hot answer, and this takes BenchmarkAnswerGzip
// about 6% less time than a bit at a time did (0.87 against 0.93 ms).
func gfMul(a, b uint32) uint32 {
	// t[m] is b times the polynomial of nibble m, whose bit 3 is x^0.
	var t [16]uint32
	t[8] = b
	t[4] = mulX(t[8])
	t[2] = mulX(t[4])
	t[1] = mulX(t[2])
	for m := 3; m < 16; m++ {
		if m&(m-1) != 0 {
			t[m] = t[m&(m-1)] ^ t[m&-m]
		}
	}
	// Horner's rule from a's highest powers, x^28 to x^31, down.
	p := t[a&15]
	for shift := 4; shift < 32; shift += 4 {
		p = p>>4 ^ mulX4[p&15] ^ t[a>>shift&15]
	}
	return p
}

// mulX is v·x modulo the CRC-32 polynomial.
func mulX(v uint32) uint32 { return v>>1 ^ crc32.IEEE&-(v&1) }

// mulX4[t] is what the low four bits t of v (x^28 to x^31) give, times
// x^4, once reduced: v·x^4 is v>>4 ^ mulX4[v&15].
var mulX4 = func() (t [16]uint32) {
	for i := range t {
		v := uint32(i)
		for range 4 {
			v = mulX(v)
		}
		t[i] = v
	}
	return t
}()

// crcPow is x^(8n) modulo the CRC-32 polynomial.
func crcPow(n int) uint32 {
	p := uint32(1) << 31 // x^0
	for k := 3; n > 0; k, n = k+1, n>>1 {
		if n&1 != 0 {
			p = gfMul(p, x2n[k])
		}
	}
	return p
}

// x2n[k] is x^(2^k) modulo the CRC-32 polynomial.
var x2n = func() (t [64]uint32) {
	t[0] = 1 << 30 // x^1
	for k := 1; k < len(t); k++ {
		t[k] = gfMul(t[k-1], t[k-1])
	}
	return t
}()
