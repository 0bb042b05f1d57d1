"""The Markdown and HTML renderers keep text as text."""

from benchbench.report.document import Cell, Code, Document, Note, Section, Side, SideBySide, Table
from benchbench.report.render import md_cell, md_fence, md_text, render_html, render_markdown


def _document(text: str) -> Document:
    blocks = [Note(text, "bad", "Label"), Table(["h"], [[Cell(text, "bad")]], text), Code(text, text),
              SideBySide(text, Side("a", text, text, text), Side("b", text, text))]
    return Document(text, text, "Generated now", [Section("s", text, blocks)])


def test_html_escapes_every_piece_of_text():
    html = render_html(_document("<img src=x onerror=alert(1)>&"))
    assert "<img" not in html
    assert html.count("&lt;img src=x onerror=alert(1)&gt;&amp;") >= 10


def test_markdown_escapes_specials_outside_code():
    assert md_text("a|b *c* <d> [e](f) `g`") == r"a\|b \*c\* &lt;d&gt; \[e\](f) \`g\`"
    assert md_cell("line one\nline two", "") == "line one<br>line two"
    assert md_cell("3", "bad") == "**✖ 3**"


def test_fence_is_longer_than_any_backtick_run_inside():
    fenced = md_fence("code ```` inside")
    assert fenced.startswith("`````text\n") and fenced.endswith("\n`````")


def test_markdown_renders_tables_with_one_row_per_line():
    markdown = render_markdown(_document("x|y"))
    assert "| h |\n| --- |\n| **✖ x\\|y** |\n" in markdown


def test_markdown_text_with_line_breaks_stays_inside_its_note_title_and_caption():
    hostile = "x\n\n# Injected heading\r\n> quote\r- item"
    blocks = [Note(hostile, "bad", "Label"), Table([hostile], [[Cell(hostile, "")]], hostile)]
    markdown = render_markdown(Document(hostile, hostile, "Generated now", [Section("s", hostile, blocks)]))
    assert "\n# Injected" not in markdown and "\n- item" not in markdown and "\n&gt; quote" not in markdown
    note = next(line for line in markdown.splitlines() if line.startswith("> ✖ **Label:**"))
    assert note.endswith("x<br><br>\\# Injected heading<br>&gt; quote<br>- item")
