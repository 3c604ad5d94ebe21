"""The invented companies that hold commercial units, and the credit codes they are given."""

from __future__ import annotations

from services.identifiers import credit_code_check_char, organisation_code_check_char

# Companies holding some commercial units; invented names, valid credit codes (see credit_code).
COMPANIES = (
    ("上海浦汇演示置业有限公司", "310115"),
    ("上海申江演示商业管理有限公司", "310101"),
    ("上海徐滨演示实业有限公司", "310104"),
    ("上海虹桥演示商务发展有限公司", "310105"),
    ("上海静安演示商厦经营有限公司", "310106"),
    ("上海莘庄演示物业有限公司", "310112"),
    ("上海嘉亭演示置业有限公司", "310114"),
    ("上海云间演示资产经营有限公司", "310117"),
)


def credit_code(*, district_code: str, organisation_code: str) -> str:
    """A GB 32100 code for an enterprise (91) registered in `district_code`; `organisation_code` is the
    8-character GB 11714 body whose check character, then the code's own, are computed here."""
    first17 = f"91{district_code}{organisation_code}{organisation_code_check_char(organisation_code)}"
    return first17 + credit_code_check_char(first17)
