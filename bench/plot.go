package bench

import (
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// side is one column of the chart: snowgate or the baseline in a phase.
type side struct {
	title    string
	buckets  []Second // per 250ms
	rowsDone []Point
	limit    float64
}

// perBucket turns a count per bucket into a rate per second.
const perBucket = float64(time.Second / bucket)

var (
	colorRequests = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	colorThrottle = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
	colorLimit    = color.RGBA{R: 0x33, G: 0x33, B: 0x33, A: 0xff}
	colorRows     = color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}
)

// WritePlot draws the report as an SVG chart: for each phase, provider
// requests per second against the limit (429s apart) and rows done over
// time, snowgate and the baseline side by side on the same axes.
func WritePlot(w io.Writer, r *Report) error {
	plots, cols, err := chart(r)
	if err != nil {
		return err
	}
	canvas := vgsvg.New(chartSize(plots, cols))
	drawChart(draw.New(canvas), plots, cols)
	if _, err := canvas.WriteTo(w); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	return nil
}

func chartSize(plots [][]*plot.Plot, cols int) (w, h vg.Length) {
	return vg.Length(cols) * 12 * vg.Centimeter, vg.Length(len(plots)) * 7 * vg.Centimeter
}

// drawChart lays the plots out on a grid with aligned axes.
func drawChart(dc draw.Canvas, plots [][]*plot.Plot, cols int) {
	tiles := draw.Tiles{Rows: len(plots), Cols: cols, PadX: 8 * vg.Millimeter, PadY: 8 * vg.Millimeter,
		PadTop: 4 * vg.Millimeter, PadBottom: 4 * vg.Millimeter, PadLeft: 4 * vg.Millimeter, PadRight: 4 * vg.Millimeter}
	for j, cs := range plot.Align(plots, tiles, dc) {
		for i, c := range cs {
			if plots[j][i] != nil {
				plots[j][i].Draw(c)
			}
		}
	}
}

// chart makes the plots of every phase: two rows each, one column per
// side.
func chart(r *Report) ([][]*plot.Plot, int, error) {
	var grid [][]side
	if g := r.Gateway; g != nil {
		row := []side{{"gateway, snowgate (cold pass)", g.Provider.Per250ms, g.RowsDone, g.Provider.Limit}}
		if b := g.Baseline; b != nil {
			row = append(row, side{"gateway rows, baseline", b.Provider.Per250ms, b.RowsDone, b.Provider.Limit})
		}
		grid = append(grid, row)
	}
	if bf := r.Backfill; bf != nil {
		row := []side{{"backfill, snowgate", bf.Provider.Per250ms, bf.RowsDone, bf.Provider.Limit}}
		if b := bf.Baseline; b != nil {
			row = append(row, side{"backfill, baseline", b.Provider.Per250ms, b.RowsDone, b.Provider.Limit})
		}
		grid = append(grid, row)
	}
	if len(grid) == 0 {
		return nil, 0, errors.New("plot: the report has no phase")
	}
	cols := 0
	for _, row := range grid {
		cols = max(cols, len(row))
	}
	var plots [][]*plot.Plot
	for _, row := range grid {
		req, done, err := phasePlots(row, cols)
		if err != nil {
			return nil, 0, fmt.Errorf("plot: %w", err)
		}
		plots = append(plots, req, done)
	}
	return plots, cols, nil
}

// phasePlots makes one phase's two rows of plots, with shared axes so the
// sides compare at a glance; a missing side is nil.
func phasePlots(row []side, cols int) (req, done []*plot.Plot, err error) {
	req, done = make([]*plot.Plot, cols), make([]*plot.Plot, cols)
	var xMax, reqMax, doneMax float64
	for _, s := range row {
		xMax = math.Max(xMax, float64(len(s.buckets))/perBucket)
		reqMax = math.Max(reqMax, s.limit*1.1)
		for _, b := range s.buckets {
			reqMax = math.Max(reqMax, float64(b.Requests)*perBucket)
		}
		for _, p := range s.rowsDone {
			xMax, doneMax = math.Max(xMax, p.T), math.Max(doneMax, p.V)
		}
	}
	for i, s := range row {
		if req[i], err = requestsPlot(s, math.Max(1, xMax)); err != nil {
			return nil, nil, err
		}
		if done[i], err = rowsPlot(s); err != nil {
			return nil, nil, err
		}
		for _, p := range []*plot.Plot{req[i], done[i]} {
			p.X.Min, p.X.Max = 0, math.Max(1, xMax)
		}
		// The headroom keeps the legend off the lines.
		req[i].Y.Min, req[i].Y.Max = 0, math.Max(1, reqMax*1.3)
		done[i].Y.Min, done[i].Y.Max = 0, math.Max(1, doneMax*1.1)
		req[i].Y.Tick.Marker, done[i].Y.Tick.Marker = countTicks{}, countTicks{}
	}
	return req, done, nil
}

// requestsPlot draws one side's requests per second; the limit spans the
// shared x axis, up to xMax seconds.
func requestsPlot(s side, xMax float64) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = s.title + ": provider requests per second"
	p.X.Label.Text, p.Y.Label.Text = "seconds", "requests/s"
	p.Legend.Top = true
	all, throttled := make(plotter.XYs, len(s.buckets)), make(plotter.XYs, len(s.buckets))
	for i, b := range s.buckets {
		x := (float64(i) + 0.5) / perBucket // the middle of the bucket, in seconds
		all[i] = plotter.XY{X: x, Y: float64(b.Requests) * perBucket}
		throttled[i] = plotter.XY{X: x, Y: float64(b.Throttled) * perBucket}
	}
	if err := addLine(p, "all requests", all, colorRequests, nil); err != nil {
		return nil, err
	}
	if err := addLine(p, "answered 429", throttled, colorThrottle, nil); err != nil {
		return nil, err
	}
	if s.limit > 0 {
		limit := plotter.XYs{{X: 0, Y: s.limit}, {X: xMax, Y: s.limit}}
		if err := addLine(p, fmt.Sprintf("limit %s/s", num(s.limit)), limit, colorLimit,
			[]vg.Length{vg.Points(4), vg.Points(3)}); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func rowsPlot(s side) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = s.title + ": rows done"
	p.X.Label.Text, p.Y.Label.Text = "seconds", "rows"
	p.Legend.Top, p.Legend.Left = true, true
	xy := make(plotter.XYs, len(s.rowsDone))
	for i, pt := range s.rowsDone {
		xy[i] = plotter.XY{X: pt.T, Y: pt.V}
	}
	return p, addLine(p, "rows with an answer", xy, colorRows, nil)
}

// countTicks labels an axis of counts with thousands separators.
type countTicks struct{}

func (countTicks) Ticks(lo, hi float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = num(ts[i].Value)
		}
	}
	return ts
}

func addLine(p *plot.Plot, name string, xy plotter.XYs, c color.Color, dashes []vg.Length) error {
	if len(xy) == 0 {
		return nil
	}
	l, err := plotter.NewLine(xy)
	if err != nil {
		return err
	}
	l.Color, l.Width, l.Dashes = c, vg.Points(1.2), dashes
	p.Add(l)
	p.Legend.Add(name, l)
	return nil
}
