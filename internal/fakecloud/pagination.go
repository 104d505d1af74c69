package fakecloud

import (
	"fmt"
	"net/http"
	"strconv"
)

// pageParams reads page (from 1) and a page size from the query parameters
// pageKey and sizeKey: default 20, at most 200 (DigitalOcean's limits).
func pageParams(r *http.Request, pageKey, sizeKey string) (page, size int) {
	q := r.URL.Query()
	page, size = 1, 20
	if v, err := strconv.Atoi(q.Get(pageKey)); err == nil && v > 0 {
		page = v
	}
	if v, err := strconv.Atoi(q.Get(sizeKey)); err == nil && v > 0 {
		size = min(v, 200)
	}
	return page, size
}

// pageOf cuts one page out of all, already in the list's order.
func pageOf[T any](all []T, page, size int) []T {
	from := min((page-1)*size, len(all))
	to := min(from+size, len(all))
	return all[from:to]
}

// pageLinksFor is DigitalOcean's links.pages: first and prev from page 2,
// next and last before the last page.
func pageLinksFor(r *http.Request, total, page, size int) pageLinks {
	base := "http://" + r.Host + r.URL.Path
	link := func(p int) string { return fmt.Sprintf("%s?page=%d&per_page=%d", base, p, size) }
	pages := map[string]string{}
	last := max((total+size-1)/size, 1)
	if page > 1 {
		pages["first"], pages["prev"] = link(1), link(page-1)
	}
	if page < last {
		pages["next"], pages["last"] = link(page+1), link(last)
	}
	return pageLinks{Pages: pages}
}

// actionPage is one page of an action list in DigitalOcean's style, which
// CloudsFor's list follows too: page and per_page, links.pages and
// meta.total. all is already in the list's order.
func actionPage[T any](r *http.Request, all []*Action, render func(*Action) T) map[string]any {
	page, size := pageParams(r, "page", "per_page")
	items := make([]T, 0, size)
	for _, a := range pageOf(all, page, size) {
		items = append(items, render(a))
	}
	return map[string]any{"actions": items, "links": pageLinksFor(r, len(all), page, size), "meta": listMeta{Total: len(all)}}
}

// actionKey identifies an action for an order by opaque key.
func actionKey(a *Action) string { return a.UUID }

type pageLinks struct {
	Pages map[string]string `json:"pages,omitempty"`
}

type listMeta struct {
	Total int `json:"total"`
}
