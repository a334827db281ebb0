// dashboard-lint checks the Grafana dashboards the chart ships (make lint,
// tests/delivery/lint.sh).
//
// Grafana's own linter, github.com/grafana/dashboard-linter, cannot be had
// here: the Go module proxy refuses every version of it (403 "This module
// version is not available", for the version list, v0.1.0 and v0.1.1). This
// tool does its job with the upstream parts it is made of:
//
//   - the dashboard schema of Grafana's foundation SDK (Apache-2.0), decoded
//     strictly: an unknown field, a wrong type or a missing required field of
//     the dashboard, of a panel's plugin options or of a Prometheus query is
//     an error; then the schema's own constraints (Validate);
//   - Prometheus's PromQL parser: every query must parse as Prometheus parses
//     it once Grafana has put in the variables;
//   - the rules of dashboard-linter that apply to a Prometheus dashboard, under
//     the same names, and a few of our own (layout, histogram buckets).
//
// Usage: dashboard-lint FILE...   prints one line per problem, exit status 1
// if there is any; dashboard-lint -rules prints the rule names.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
)

// The rules, in the order they are checked.
var rules = []string{
	"schema",
	"dashboard-uid-rule",
	"template-datasource-rule",
	"template-query-rule",
	"panel-datasource-rule",
	"panel-title-description-rule",
	"panel-units-rule",
	"panel-layout-rule",
	"target-promql-rule",
	"target-job-rule",
	"target-rate-interval-rule",
	"target-counter-agg-rule",
	"target-histogram-le-rule",
}

// Grafana's interval variables become durations no hand-written query uses,
// so the parsed query still tells which variable stood where.
var builtins = map[string]time.Duration{
	"__rate_interval": 17*time.Minute + 23*time.Second,
	"__interval":      11*time.Minute + 7*time.Second,
	"__range":         29*time.Minute + 3*time.Second,
}

// A dashboard variable becomes this placeholder, a valid label value and
// regular expression.
func placeholder(name string) string { return "__var_" + name + "__" }

// $name, ${name}, ${name:format} and [[name]].
var variableRef = regexp.MustCompile(`\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)(?::\w+)?\]\]`)

// Functions whose range-vector argument a counter may be read through.
var counterFunctions = map[string]bool{"rate": true, "irate": true, "increase": true}

// Panel types that show a number and so need a unit.
var unitPanels = map[string]bool{"timeseries": true, "stat": true, "gauge": true, "bargauge": true, "table": true}

const gridWidth = 24

type dsRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	Datasource *dsRef          `json:"datasource"`
}

type gridPos struct {
	H, W, X, Y int
}

type target struct {
	RefID      string `json:"refId"`
	Expr       string `json:"expr"`
	Datasource *dsRef `json:"datasource"`
}

type panel struct {
	ID          *int     `json:"id"`
	Type        string   `json:"type"`
	Title       string   `json:"title"`
	Description string   `json:"description"`
	Datasource  *dsRef   `json:"datasource"`
	GridPos     *gridPos `json:"gridPos"`
	Targets     []target `json:"targets"`
	FieldConfig *struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	// A collapsed row carries its panels.
	Panels []panel `json:"panels"`
}

type document struct {
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []variable `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type linter struct {
	file     string
	problems []string
	vars     map[string]bool
}

func (l *linter) report(rule, where, format string, args ...any) {
	l.problems = append(l.problems, fmt.Sprintf("%s: %s: %s: %s", l.file, rule, where, fmt.Sprintf(format, args...)))
}

func main() {
	if len(os.Args) == 2 && os.Args[1] == "-rules" {
		fmt.Println(strings.Join(rules, "\n"))
		return
	}
	if len(os.Args) < 2 || strings.HasPrefix(os.Args[1], "-") {
		fmt.Fprintln(os.Stderr, "usage: dashboard-lint FILE... | dashboard-lint -rules")
		os.Exit(2)
	}
	// The panel plugins' options and the data sources' queries are decoded
	// by their own schema only once registered.
	plugins.RegisterDefaultPlugins()
	failed := false
	for _, file := range os.Args[1:] {
		l := &linter{file: file, vars: map[string]bool{}}
		panels, queries, err := l.lint(file)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", file, err)
			os.Exit(2)
		}
		for _, p := range l.problems {
			fmt.Println(p)
		}
		if len(l.problems) > 0 {
			failed = true
			fmt.Printf("%s: %d problems\n", file, len(l.problems))
		} else {
			fmt.Printf("%s: %d panels, %d queries: clean\n", file, panels, queries)
		}
	}
	if failed {
		os.Exit(1)
	}
}

// lint checks one file; an error means it could not be read at all.
func (l *linter) lint(file string) (panels, queries int, err error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return 0, 0, err
	}
	var doc document
	if err := json.Unmarshal(raw, &doc); err != nil {
		return 0, 0, fmt.Errorf("not a dashboard: %w", err)
	}

	var strict dashboard.Dashboard
	if err := strict.UnmarshalJSONStrict(raw); err != nil {
		for _, e := range splitErrors(err) {
			l.report("schema", "dashboard", "%v", e)
		}
	} else if err := strict.Validate(); err != nil {
		for _, e := range splitErrors(err) {
			l.report("schema", "dashboard", "%v", e)
		}
	}

	if doc.Title == "" {
		l.report("dashboard-uid-rule", "dashboard", "no title")
	}
	if !regexp.MustCompile(`^[A-Za-z0-9_-]{1,40}$`).MatchString(doc.UID) {
		l.report("dashboard-uid-rule", "dashboard", "uid %q: a stable uid of 1 to 40 letters, digits, - and _ keeps links and provisioning stable", doc.UID)
	}

	l.templating(doc.Templating.List)

	var all []panel
	for _, p := range doc.Panels {
		all = append(all, p)
		all = append(all, p.Panels...)
	}
	l.layout(doc.Panels)
	for _, p := range all {
		if p.Type == "row" {
			if p.Title == "" {
				l.report("panel-title-description-rule", where(p), "a row without a title")
			}
			continue
		}
		panels++
		queries += len(p.Targets)
		l.panel(p)
	}
	return panels, queries, nil
}

// splitErrors: the schema reports every violation at once, each with its path.
func splitErrors(err error) []error {
	var each cog.BuildErrors
	if !errors.As(err, &each) {
		return []error{err}
	}
	out := make([]error, len(each))
	for i, e := range each {
		out[i] = e
	}
	return out
}

func where(p panel) string {
	id := "?"
	if p.ID != nil {
		id = fmt.Sprint(*p.ID)
	}
	return fmt.Sprintf("panel %s %q", id, p.Title)
}

func usesDatasourceVariable(ds *dsRef) bool {
	return ds != nil && ds.Type == "prometheus" && (ds.UID == "${datasource}" || ds.UID == "$datasource")
}

func (l *linter) templating(vars []variable) {
	found := false
	for _, v := range vars {
		l.vars[v.Name] = true
		if v.Name == "datasource" {
			var query string
			_ = json.Unmarshal(v.Query, &query)
			found = v.Type == "datasource" && query == "prometheus"
		}
	}
	if !found {
		l.report("template-datasource-rule", "templating", "no variable datasource of type datasource for prometheus: every query must follow the data source the reader picks")
	}
	for _, v := range vars {
		if v.Type != "query" {
			continue
		}
		at := fmt.Sprintf("variable %q", v.Name)
		if !usesDatasourceVariable(v.Datasource) {
			l.report("template-query-rule", at, "its data source is not {type: prometheus, uid: ${datasource}}")
		}
		var query string
		if err := json.Unmarshal(v.Query, &query); err != nil {
			var object struct {
				Query string `json:"query"`
			}
			_ = json.Unmarshal(v.Query, &object)
			query = object.Query
		}
		m := regexp.MustCompile(`^label_values\((.*),\s*(\w+)\)$`).FindStringSubmatch(strings.TrimSpace(query))
		if m == nil {
			l.report("template-query-rule", at, "query %q is not label_values(SELECTOR, LABEL)", query)
			continue
		}
		expanded, unknown := l.expand(m[1])
		for _, name := range unknown {
			l.report("template-query-rule", at, "uses $%s, which the dashboard does not define", name)
		}
		if _, err := parser.NewParser(parser.Options{}).ParseMetricSelector(expanded); err != nil {
			l.report("template-query-rule", at, "selector %q does not parse: %v", m[1], err)
		}
	}
}

// expand puts Grafana's variables into a query the way Grafana does before
// sending it, with placeholders; it returns the names it does not know.
func (l *linter) expand(query string) (string, []string) {
	var unknown []string
	out := variableRef.ReplaceAllStringFunc(query, func(ref string) string {
		m := variableRef.FindStringSubmatch(ref)
		name := m[1] + m[2] + m[3]
		if d, ok := builtins[name]; ok {
			return model.Duration(d).String()
		}
		if !l.vars[name] {
			unknown = append(unknown, name)
		}
		return placeholder(name)
	})
	return out, unknown
}

func (l *linter) panel(p panel) {
	at := where(p)
	if p.Title == "" || strings.TrimSpace(p.Description) == "" {
		l.report("panel-title-description-rule", at, "every panel needs a title and a description that says how to read it")
	}
	if unitPanels[p.Type] && (p.FieldConfig == nil || p.FieldConfig.Defaults.Unit == "") {
		l.report("panel-units-rule", at, "no unit (fieldConfig.defaults.unit)")
	}
	if !usesDatasourceVariable(p.Datasource) {
		l.report("panel-datasource-rule", at, "its data source is not {type: prometheus, uid: ${datasource}}")
	}
	if len(p.Targets) == 0 && p.Type != "text" {
		l.report("target-promql-rule", at, "no query")
	}
	for _, t := range p.Targets {
		l.target(p, t)
	}
}

func (l *linter) target(p panel, t target) {
	at := fmt.Sprintf("%s query %s", where(p), t.RefID)
	if t.Datasource != nil && !usesDatasourceVariable(t.Datasource) {
		l.report("panel-datasource-rule", at, "its data source is not {type: prometheus, uid: ${datasource}}")
	}
	expanded, unknown := l.expand(t.Expr)
	for _, name := range unknown {
		l.report("target-promql-rule", at, "uses $%s, which the dashboard does not define", name)
	}
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(expanded)
	if err != nil {
		l.report("target-promql-rule", at, "%q does not parse: %v", t.Expr, err)
		return
	}
	parser.Inspect(expr, func(node parser.Node, path []parser.Node) error {
		switch n := node.(type) {
		case *parser.VectorSelector:
			l.selector(at, n, path)
		case *parser.MatrixSelector:
			if call, ok := parent(path).(*parser.Call); ok && counterFunctions[call.Func.Name] && n.Range != builtins["__rate_interval"] {
				l.report("target-rate-interval-rule", at, "%s over [%s]: use [$__rate_interval], which follows the scrape interval and the zoom", call.Func.Name, model.Duration(n.Range))
			}
		case *parser.Call:
			if n.Func.Name == "histogram_quantile" && len(n.Args) == 2 {
				if agg, ok := unwrap(n.Args[1]).(*parser.AggregateExpr); ok && (agg.Without || !contains(agg.Grouping, "le")) {
					l.report("target-histogram-le-rule", at, "histogram_quantile over %s without le in by (...): the buckets are summed away", agg.Op)
				}
			}
		}
		return nil
	})
}

func (l *linter) selector(at string, n *parser.VectorSelector, path []parser.Node) {
	if strings.Contains(n.Name, "__var_") {
		l.report("target-promql-rule", at, "a variable stands where a metric name belongs")
	}
	job := false
	for _, m := range n.LabelMatchers {
		if m.Name == "job" && strings.Contains(m.Value, "__var_") {
			job = true
		}
	}
	if !job {
		l.report("target-job-rule", at, "%s has no job=~\"$<variable>\" matcher: it would mix every scrape job that has the metric", n.Name)
	}
	if isCounter(n.Name) {
		matrix, ok := parent(path).(*parser.MatrixSelector)
		var call *parser.Call
		if ok && len(path) >= 2 {
			call, _ = path[len(path)-2].(*parser.Call)
		}
		if matrix == nil || call == nil || !counterFunctions[call.Func.Name] {
			l.report("target-counter-agg-rule", at, "counter %s read without rate(), irate() or increase(): its raw value restarts with the process", n.Name)
		}
	}
}

func isCounter(name string) bool {
	for _, suffix := range []string{"_total", "_bucket", "_count", "_sum"} {
		if strings.HasSuffix(name, suffix) {
			return true
		}
	}
	return false
}

func parent(path []parser.Node) parser.Node {
	if len(path) == 0 {
		return nil
	}
	return path[len(path)-1]
}

func unwrap(e parser.Expr) parser.Expr {
	for {
		p, ok := e.(*parser.ParenExpr)
		if !ok {
			return e
		}
		e = p.Expr
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// layout: every panel placed, inside the 24-column grid, none on top of
// another, ids unique (Grafana keys panel state and links by id).
func (l *linter) layout(panels []panel) {
	ids := map[int]string{}
	type box struct {
		at string
		g  gridPos
	}
	var boxes []box
	var visit func(ps []panel, top bool)
	visit = func(ps []panel, top bool) {
		for _, p := range ps {
			at := where(p)
			if p.ID == nil {
				l.report("panel-layout-rule", at, "no id")
			} else if other, dup := ids[*p.ID]; dup {
				l.report("panel-layout-rule", at, "id %d already used by %s", *p.ID, other)
			} else {
				ids[*p.ID] = at
			}
			if p.GridPos == nil || p.GridPos.W <= 0 || p.GridPos.H <= 0 {
				l.report("panel-layout-rule", at, "no gridPos with a width and a height")
			} else if p.GridPos.X < 0 || p.GridPos.X+p.GridPos.W > gridWidth {
				l.report("panel-layout-rule", at, "x %d + w %d leaves the %d-column grid", p.GridPos.X, p.GridPos.W, gridWidth)
			} else if top {
				boxes = append(boxes, box{at, *p.GridPos})
			}
			visit(p.Panels, false)
		}
	}
	visit(panels, true)
	sort.SliceStable(boxes, func(i, j int) bool { return boxes[i].g.Y < boxes[j].g.Y })
	for i, a := range boxes {
		for _, b := range boxes[i+1:] {
			if a.g.X < b.g.X+b.g.W && b.g.X < a.g.X+a.g.W && a.g.Y < b.g.Y+b.g.H && b.g.Y < a.g.Y+a.g.H {
				l.report("panel-layout-rule", b.at, "overlaps %s", a.at)
			}
		}
	}
}
