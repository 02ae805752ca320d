package engine

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Output chunking limits.
const (
	// MaxChunkSize is the largest LogChunk.Data.
	MaxChunkSize = 64 << 10
	// FlushInterval is the longest output waits before it is delivered.
	FlushInterval = 100 * time.Millisecond
)

const (
	streamStdout = "stdout"
	streamStderr = "stderr"
	streamSystem = "system"
)

// mask replaces a secret in the output.
var mask = []byte("***")

// MinSecretLength is the shortest secret value, in characters, that
// callers should accept (the API at save time, `simpleci exec --secret`):
// masking every occurrence of a shorter string would destroy the log while
// hiding little. The engine itself masks whatever it is given. Lines of a
// multi-line secret are masked on their own only when they are at least
// this long.
const MinSecretLength = 4

// DataBorrower is implemented by an [Observer] that is done with
// LogChunk.Data when Log returns: it writes the bytes out or copies what
// it keeps. The engine then lends it its own buffer instead of a fresh
// copy per chunk, so streaming output allocates nothing. BorrowsData is
// asked once per job.
type DataBorrower interface {
	// BorrowsData reports whether Log never keeps LogChunk.Data (nor a
	// slice of it) after it returns.
	BorrowsData() bool
}

// emitter serialises every call to the observer and numbers the chunks.
type emitter struct {
	mu     sync.Mutex
	obs    Observer
	mask   *Masker // for reasons
	lend   bool    // obs borrows LogChunk.Data
	seq    int64
	offset int64

	// The output caps (Job.StepLogLimit, Job.RunLogLimit; 0: none) and
	// what was delivered and dropped against them.
	stepCap, runCap int64
	runBytes        int64
	runCut          bool
	steps           map[int]*stepTally
}

// stepTally is what a step delivered and dropped.
type stepTally struct {
	bytes, dropped int64
	cut            bool // the step's cut was marked in the log
}

func newEmitter(obs Observer) *emitter {
	e := &emitter{obs: obs, steps: map[int]*stepTally{}}
	if b, ok := obs.(DataBorrower); ok {
		e.lend = b.BorrowsData()
	}
	return e
}

func (e *emitter) stepStarted(i int, name string, at time.Time) {
	if e.obs == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.obs.StepStarted(i, name, at)
}

func (e *emitter) stepSkipped(i int, name, reason string) {
	if e.obs == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.obs.StepSkipped(i, name, e.mask.String(reason))
}

func (e *emitter) stepFinished(i int, name string, r StepResult) {
	if e.obs == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if t := e.steps[i]; t != nil && t.dropped > 0 {
		e.deliver(i, streamSystem, fmt.Appendf(nil, "[simpleci] output truncated: %d bytes of this step's output dropped\n", t.dropped))
	}
	r.Reason = e.mask.String(r.Reason)
	e.obs.StepFinished(i, name, r)
}

// system delivers data (the job's preamble) as chunks of stream "system"
// for no step (-1).
func (e *emitter) system(data []byte) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for len(data) > 0 {
		n := min(len(data), MaxChunkSize)
		e.log(-1, streamSystem, data[:n])
		data = data[n:]
	}
}

// stepLine delivers one line of the engine's own (a cache hit, a refused path) in
// step's log, stream "system", masked.
func (e *emitter) stepLine(step int, line string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	data := []byte(e.mask.String(line) + "\n")
	for len(data) > 0 {
		n := min(len(data), MaxChunkSize)
		e.log(step, streamSystem, data[:n])
		data = data[n:]
	}
}

// log delivers data as one chunk, as far as the caps let it; e.mu is held.
func (e *emitter) log(step int, stream string, data []byte) {
	if len(data) == 0 {
		return
	}
	keep, marker := e.admit(step, data)
	e.deliver(step, stream, data[:keep])
	if marker != "" {
		e.deliver(step, streamSystem, []byte(marker))
	}
}

// admit counts data, step's output, against the caps: it returns how many
// of its bytes to deliver (a cut falls before a UTF-8 character that
// would be split) and, the first time the step's or the run's cap cuts its
// output, the line that says so; e.mu is held.
func (e *emitter) admit(step int, data []byte) (keep int, marker string) {
	t := e.steps[step]
	if t == nil {
		t = &stepTally{}
		e.steps[step] = t
	}
	n := len(data)
	if t.cut || e.runCut {
		t.dropped += int64(n)
		return 0, ""
	}
	room := int64(n)
	var cut string
	if e.stepCap > 0 && step >= 0 && e.stepCap-t.bytes < room {
		room, cut = max(e.stepCap-t.bytes, 0), "step"
	}
	if e.runCap > 0 && e.runCap-e.runBytes < room {
		room, cut = max(e.runCap-e.runBytes, 0), "run"
	}
	keep = int(room)
	for i := keep; keep < n && i > 0 && i > keep-utf8.UTFMax; i-- {
		if utf8.RuneStart(data[i]) {
			keep = i
			break
		}
	}
	t.bytes += int64(keep)
	e.runBytes += int64(keep)
	t.dropped += int64(n - keep)
	switch cut {
	case "step":
		t.cut = true
		marker = fmt.Sprintf("\n[simpleci] output truncated: step log limit (%s) reached; the rest of this step's output is discarded, the step keeps running\n", formatSize(e.stepCap))
	case "run":
		e.runCut, t.cut = true, true
		marker = fmt.Sprintf("\n[simpleci] output truncated: run log limit (%s) reached; the rest of the run's output is discarded, the steps keep running\n", formatSize(e.runCap))
	}
	return keep, marker
}

// full reports whether step's output is dropped whole from now on; e.mu is
// held.
func (e *emitter) full(step int) bool {
	t := e.steps[step]
	return e.runCut || t != nil && t.cut
}

// deliver hands data to the observer as one chunk; e.mu is held. data is
// lent to a borrowing observer and copied for others.
func (e *emitter) deliver(step int, stream string, data []byte) {
	if len(data) == 0 {
		return
	}
	e.seq++
	off := e.offset
	e.offset += int64(len(data))
	if e.obs == nil {
		return
	}
	if !e.lend {
		data = bytes.Clone(data)
	}
	e.obs.Log(LogChunk{Step: step, Seq: e.seq, Offset: off, Stream: stream, Data: data, At: time.Now()})
}

// formatSize is n in the largest binary unit that divides it, else in bytes.
func formatSize(n int64) string {
	for _, u := range []struct {
		size int64
		name string
	}{{1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}} {
		if n >= u.size && n%u.size == 0 {
			return fmt.Sprintf("%d %s", n/u.size, u.name)
		}
	}
	return fmt.Sprintf("%d bytes", n)
}

// Stream indexes of stepOutput.
const (
	stdout = 0
	stderr = 1
)

var streamNames = [2]string{streamStdout, streamStderr}

// stepOutput collects the output of the job's commands, one command at a
// time: begin starts a command's output, close ends it. It holds at most
// one pending chunk (of one stream) and, per stream, a possible beginning
// of a secret. One stepOutput serves a whole job, so that its buffers and
// its timer are made once.
type stepOutput struct {
	em      *emitter
	step    int
	pending []byte
	stream  int // of pending
	timer   *time.Timer
	armed   bool
	closed  bool
	maskers [2]*masker
}

func (e *emitter) newStepOutput(secrets [][]byte) *stepOutput {
	o := &stepOutput{em: e, pending: make([]byte, 0, MaxChunkSize), closed: true}
	set := newMaskSet(secrets)
	for s := range o.maskers {
		o.maskers[s] = &masker{set: set}
	}
	o.timer = time.AfterFunc(time.Hour, o.timerFlush)
	o.timer.Stop()
	return o
}

// begin starts the output of a command of step.
func (o *stepOutput) begin(step int) {
	o.em.mu.Lock()
	defer o.em.mu.Unlock()
	o.step, o.closed = step, false
	for _, m := range o.maskers {
		m.reset()
	}
}

// write is called by the command's reading goroutines, one per stream.
func (o *stepOutput) write(stream int, p []byte) {
	o.em.mu.Lock()
	defer o.em.mu.Unlock()
	if o.closed {
		return
	}
	if o.em.full(o.step) {
		// Past a cap: count and drop without masking; the command is
		// still read, so it never blocks on a full pipe.
		o.flush()
		o.em.log(o.step, streamNames[stream], p)
		return
	}
	o.maskers[stream].write(p, false, func(b []byte) { o.append(stream, b) })
}

// append adds masked output; em.mu is held.
func (o *stepOutput) append(stream int, b []byte) {
	if len(o.pending) > 0 && o.stream != stream {
		o.flush()
	}
	o.stream = stream
	for len(b) > 0 {
		n := min(len(b), MaxChunkSize-len(o.pending))
		o.pending = append(o.pending, b[:n]...)
		b = b[n:]
		if len(o.pending) >= MaxChunkSize {
			o.flush()
		}
	}
	if len(o.pending) > 0 && !o.armed {
		o.armed = true
		o.timer.Reset(FlushInterval)
	}
}

// flush delivers the pending chunk; em.mu is held.
func (o *stepOutput) flush() {
	o.em.log(o.step, streamNames[o.stream], o.pending)
	o.pending = o.pending[:0]
	if o.armed {
		o.armed = false
		o.timer.Stop()
	}
}

func (o *stepOutput) timerFlush() {
	o.em.mu.Lock()
	defer o.em.mu.Unlock()
	o.armed = false
	if !o.closed {
		o.flush()
	}
}

// close delivers everything held back. Called once the command's reading
// goroutines are done; later writes are dropped until the next begin.
func (o *stepOutput) close() {
	o.em.mu.Lock()
	defer o.em.mu.Unlock()
	if o.closed {
		return
	}
	for s, m := range o.maskers {
		m.write(nil, true, func(b []byte) { o.append(s, b) })
	}
	o.flush()
	o.closed = true
}

// stop releases the timer at the end of the job.
func (o *stepOutput) stop() {
	o.em.mu.Lock()
	defer o.em.mu.Unlock()
	o.closed = true
	o.timer.Stop()
}

// Masker replaces a job's secrets, and their encodings, in text: the same
// values, found the same way, as in the job's output. The engine passes
// every reason it reports (steps and the run) through it, and a runner
// passes what else it reports of a job (its own reasons, the isolation
// line) through it, so that no error can carry a secret out, even one that
// quotes a value by mistake. A Masker is safe for concurrent use.
type Masker struct {
	set *maskSet
}

// NewMasker returns the masker of a job with these secrets (empty values
// are ignored).
func NewMasker(secrets []string) *Masker {
	return &Masker{set: newMaskSet(maskValues(secrets))}
}

// String returns s with every secret replaced by ***.
func (m *Masker) String(s string) string {
	if m == nil || len(m.set.secrets) == 0 || s == "" {
		return s
	}
	var b strings.Builder
	mk := &masker{set: m.set}
	mk.write([]byte(s), true, func(p []byte) { b.Write(p) })
	return b.String()
}

// maskValues lists the byte strings to mask, longest first: each secret,
// its base64 encodings (standard and URL alphabets, padded and not) and,
// for a multi-line secret, each of its lines (without the white space
// around it) that has at least MinSecretLength characters, since a
// program may print such a secret (a key, a certificate) line by line, or
// indented.
func maskValues(secrets []string) [][]byte {
	seen := map[string]bool{}
	var out [][]byte
	add := func(s string) {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, []byte(s))
		}
	}
	for _, s := range secrets {
		if s == "" {
			continue
		}
		add(s)
		add(base64.StdEncoding.EncodeToString([]byte(s)))
		add(base64.RawStdEncoding.EncodeToString([]byte(s)))
		add(base64.URLEncoding.EncodeToString([]byte(s)))
		add(base64.RawURLEncoding.EncodeToString([]byte(s)))
		if strings.ContainsAny(s, "\r\n") {
			for _, line := range strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' }) {
				if line = strings.TrimSpace(line); utf8.RuneCountInString(line) >= MinSecretLength {
					add(line)
				}
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// maskSet is the secrets of a job, prepared for searching; the maskers of
// a job's streams share it.
//
// The search is Wu-Manber's: a window as long as the shortest secret
// slides over the output, and a table says, for the window's last two
// bytes, how far it may move on without passing the start of a secret.
// Over ordinary output the window moves by nearly its length, so most
// bytes are never looked at. Only a position where a secret may start is
// compared, and only with the secrets starting with its byte. With a
// secret shorter than 3 bytes the window is too short to pay off, and
// every position is checked against the first two bytes of the secrets.
type maskSet struct {
	secrets [][]byte // longest first
	// byFirst lists, per first byte, the secrets starting with it,
	// longest first.
	byFirst [256][][]byte
	first   [256]bool
	// single marks the bytes that are whole one-byte secrets.
	single [256]bool
	// pairs has a bit for the first two bytes of each longer secret.
	pairs [1 << 16 / 64]uint64
	// window is the length of the shortest secret, at most 255.
	window int
	// shift is, per pair of bytes ending the window, how far the window
	// may move; nil when window < 3.
	shift *[1 << 16]uint8
}

func newMaskSet(secrets [][]byte) *maskSet {
	ms := &maskSet{secrets: secrets, window: 255}
	for _, s := range secrets { // longest first, as maskValues sorts them
		ms.first[s[0]] = true
		ms.byFirst[s[0]] = append(ms.byFirst[s[0]], s)
		ms.window = min(ms.window, len(s))
		if len(s) == 1 {
			ms.single[s[0]] = true
		} else {
			k := uint(s[0])<<8 | uint(s[1])
			ms.pairs[k/64] |= 1 << (k % 64)
		}
	}
	if len(secrets) == 0 || ms.window < 3 {
		return ms
	}
	w := ms.window
	ms.shift = new([1 << 16]uint8)
	for i := range ms.shift {
		ms.shift[i] = uint8(w - 1)
	}
	for _, s := range secrets {
		for j := 0; j+2 <= w; j++ {
			k := uint(s[j])<<8 | uint(s[j+1])
			ms.shift[k] = min(ms.shift[k], uint8(w-2-j))
		}
	}
	return ms
}

// at looks for a secret at the start of rest: the length of the longest
// one there, or partial when rest is the beginning of a longer secret
// (only when more output may come, !final).
func (ms *maskSet) at(rest []byte, final bool) (match int, partial bool) {
	for _, s := range ms.byFirst[rest[0]] {
		if len(s) > len(rest) {
			if !final && bytes.HasPrefix(s, rest) {
				return 0, true
			}
			continue
		}
		if bytes.Equal(rest[:len(s)], s) {
			return len(s), false // the longest, as they are sorted
		}
	}
	return 0, false
}

// next returns the first position at or after i where a secret may
// start, or len(buf): the scan without a shift table.
func (ms *maskSet) next(buf []byte, i int) int {
	n := len(buf)
	for ; i < n-1; i++ {
		c := buf[i]
		if !ms.first[c] {
			continue
		}
		k := uint(c)<<8 | uint(buf[i+1])
		if ms.pairs[k/64]&(1<<(k%64)) != 0 || ms.single[c] {
			return i
		}
	}
	if i == n-1 && ms.first[buf[i]] {
		return i // a secret may start in the last byte
	}
	return n
}

// masker replaces secrets in a stream that arrives in pieces. It holds
// back a tail of the stream that could be the beginning of a secret, so a
// secret split across writes is still found. The tail is shorter than the
// longest secret. At each position the longest secret that matches there
// is replaced.
type masker struct {
	set     *maskSet
	held    []byte
	scratch []byte
}

func newMasker(secrets [][]byte) *masker {
	return &masker{set: newMaskSet(secrets)}
}

// reset forgets a held tail, for the output of the next command.
func (m *masker) reset() {
	m.held = m.held[:0]
}

// write passes p on to emit with secrets replaced. With final set it also
// releases the held tail.
func (m *masker) write(p []byte, final bool, emit func([]byte)) {
	ms := m.set
	if len(ms.secrets) == 0 {
		if len(p) > 0 {
			emit(p)
		}
		return
	}
	buf := p
	if len(m.held) > 0 {
		m.scratch = append(append(m.scratch[:0], m.held...), p...)
		buf = m.scratch
	}
	n := len(buf)
	last := 0 // buf[:last] is emitted
	hold := n // buf[hold:] is held back
	if ms.shift != nil {
		w := ms.window
		// e is the last byte of the window starting at e-w+1; every
		// start before that has been ruled out or handled.
		e := w - 1
		for e < n {
			if sh := ms.shift[uint(buf[e-1])<<8|uint(buf[e])]; sh > 0 {
				e += int(sh)
				continue
			}
			s := e - w + 1
			match, partial := ms.at(buf[s:], final)
			if partial {
				hold = s
				break
			}
			if match > 0 {
				if s > last {
					emit(buf[last:s])
				}
				emit(mask)
				last = s + match
				e = last + w - 1
				continue
			}
			e++
		}
		if hold == n && !final {
			// The last starts, where no window fits: shorter than any
			// secret, so they can only be the beginning of one.
			for s := max(e-w+1, last); s < n; s++ {
				if ms.first[buf[s]] {
					if _, partial := ms.at(buf[s:], false); partial {
						hold = s
						break
					}
				}
			}
		}
	} else {
		for i := 0; ; {
			if i = ms.next(buf, i); i >= n {
				break
			}
			match, partial := ms.at(buf[i:], final)
			if partial {
				hold = i
				break
			}
			if match > 0 {
				if i > last {
					emit(buf[last:i])
				}
				emit(mask)
				i += match
				last = i
				continue
			}
			i++
		}
	}
	if hold > last {
		emit(buf[last:hold])
	}
	m.held = append(m.held[:0], buf[hold:]...)
}
