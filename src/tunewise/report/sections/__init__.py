"""The report's sections, one module each: `SECTION`, a `templating.Section`, drawn by its template in
`report/templates/sections/`. `report.build.SECTIONS` lists them in page order; a new section is a
new module here plus one line in that list."""
