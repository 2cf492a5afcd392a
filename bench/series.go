package bench

import (
	"log/slog"
	"time"
)

// Point is one sample of a time series: seconds since the start of what is
// measured, and a value.
type Point struct {
	T float64 `json:"t"`
	V float64 `json:"v"`
}

// sampleEvery is the resolution of the rows-done curves.
const sampleEvery = 250 * time.Millisecond

// logEvery is how often a long phase says how far it got.
const logEvery = 10 * time.Second

// sampler records a counter until finish is called. Every logEvery it logs
// the counter against total, so a long run shows it is alive.
type sampler struct {
	stop   chan struct{}
	done   chan struct{}
	points []Point // written by the sampling goroutine until done is closed
}

func startSampler(what string, total int, f func() float64, log *slog.Logger) *sampler {
	s := &sampler{stop: make(chan struct{}), done: make(chan struct{})}
	start := time.Now()
	s.points = append(s.points, Point{0, f()})
	go func() {
		defer close(s.done)
		t := time.NewTicker(sampleEvery)
		defer t.Stop()
		lastLog := start
		for {
			select {
			case <-s.stop:
				s.points = append(s.points, Point{time.Since(start).Seconds(), f()})
				return
			case now := <-t.C:
				v := f()
				s.points = append(s.points, Point{now.Sub(start).Seconds(), v})
				if now.Sub(lastLog) >= logEvery {
					lastLog = now
					log.Info("bench progress", "phase", what, "done", int64(v), "of", total,
						"per_second", int64(v/now.Sub(start).Seconds()))
				}
			}
		}
	}()
	return s
}

// finish takes a last sample and returns the series.
func (s *sampler) finish() []Point {
	close(s.stop)
	<-s.done
	return s.points
}

// to99 reads a rows-done series: the rate until 99% of the final count, and
// the time the rest took.
func to99(points []Point) (rate, tail float64) {
	if len(points) == 0 {
		return 0, 0
	}
	last := points[len(points)-1]
	for _, p := range points {
		if p.V >= 0.99*last.V && p.T > 0 {
			return p.V / p.T, last.T - p.T
		}
	}
	return 0, 0
}
