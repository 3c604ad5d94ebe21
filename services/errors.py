"""The one domain error hierarchy.

Each error has a stable machine `code`, a Chinese and an English message, and structured
fields. No HTTP statuses here: `api/errors.py` maps classes to statuses in one place.
"""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    code: ClassVar[str] = "DOMAIN_ERROR"
    title_zh: ClassVar[str] = "请求无法完成"
    title_en: ClassVar[str] = "The request cannot be completed"

    def __init__(self, detail_zh: str | None = None, detail_en: str | None = None, **fields: Any) -> None:
        self.detail_zh = detail_zh or self.title_zh
        self.detail_en = detail_en or self.title_en
        self.fields = fields
        super().__init__(self.detail_en)


class ValidationFailed(DomainError):
    code = "VALIDATION_FAILED"
    title_zh = "请求参数不合法"
    title_en = "The request is not valid"


class InvalidIdNumber(ValidationFailed):
    code = "INVALID_ID_NUMBER"
    title_zh = "居民身份证号码不合法"
    title_en = "The resident ID number is not valid"


class InvalidCreditCode(ValidationFailed):
    code = "INVALID_CREDIT_CODE"
    title_zh = "统一社会信用代码不合法"
    title_en = "The unified social credit code is not valid"


class InvalidUnitNumber(ValidationFailed):
    code = "INVALID_UNIT_NUMBER"
    title_zh = "不动产单元号不合法"
    title_en = "The real-estate unit number is not valid"


class InvalidCertificateNumber(ValidationFailed):
    code = "INVALID_CERTIFICATE_NUMBER"
    title_zh = "不动产权证书号不合法"
    title_en = "The certificate number is not valid"


class InvalidPhone(ValidationFailed):
    code = "INVALID_PHONE"
    title_zh = "手机号码不合法"
    title_en = "The phone number is not valid"


class NotFound(DomainError):
    code = "NOT_FOUND"
    title_zh = "未找到该资源"
    title_en = "Not found"


class Conflict(DomainError):
    code = "CONFLICT"
    title_zh = "请求与当前状态冲突"
    title_en = "The request conflicts with the current state"


# --- authentication and authorisation ------------------------------------------------------------


class AuthenticationFailed(DomainError):
    code = "AUTHENTICATION_FAILED"
    title_zh = "身份认证失败"
    title_en = "Authentication failed"


class AuthenticationRequired(AuthenticationFailed):
    """No credentials at all, as opposed to wrong ones."""

    code = "AUTHENTICATION_REQUIRED"
    title_zh = "需要登录"
    title_en = "Authentication is required"


class TokenInvalid(AuthenticationFailed):
    code = "TOKEN_INVALID"
    title_zh = "令牌无效或已过期"
    title_en = "The token is invalid or expired"


class RefreshTokenReused(AuthenticationFailed):
    code = "REFRESH_TOKEN_REUSED"
    title_zh = "刷新令牌被重复使用，该登录已被注销"
    title_en = "The refresh token was reused; the session has been revoked"


class OtpInvalid(AuthenticationFailed):
    code = "OTP_INVALID"
    title_zh = "验证码错误或已失效"
    title_en = "The code is wrong or no longer valid"


class OtpAttemptsExceeded(AuthenticationFailed):
    code = "OTP_ATTEMPTS_EXCEEDED"
    title_zh = "验证码错误次数过多，请重新获取"
    title_en = "Too many wrong codes; request a new one"


class AccountLocked(AuthenticationFailed):
    code = "ACCOUNT_LOCKED"
    title_zh = "账号已被临时锁定"
    title_en = "The account is temporarily locked"


class PermissionDenied(DomainError):
    code = "PERMISSION_DENIED"
    title_zh = "无权执行该操作"
    title_en = "You are not allowed to do this"


class RateLimited(DomainError):
    code = "RATE_LIMITED"
    title_zh = "请求过于频繁，请稍后再试"
    title_en = "Too many requests; try again later"

    def __init__(self, retry_after_s: int, **fields: Any) -> None:
        super().__init__(
            f"请求过于频繁，请在{retry_after_s}秒后再试",
            f"Too many requests; try again in {retry_after_s} s",
            retry_after_s=retry_after_s,
            **fields,
        )
        self.retry_after_s = retry_after_s


# --- external systems ----------------------------------------------------------------------------


class UpstreamUnavailable(DomainError):
    code = "UPSTREAM_UNAVAILABLE"
    title_zh = "外部系统暂时不可用，请稍后再试"
    title_en = "An external system is unavailable; try again later"


class MalformedRequest(DomainError):
    code = "MALFORMED_REQUEST"
    title_zh = "请求格式错误"
    title_en = "The request is malformed"


class UnsupportedMediaType(MalformedRequest):
    code = "UNSUPPORTED_MEDIA_TYPE"
    title_zh = "不支持的内容类型"
    title_en = "Unsupported media type"


# --- properties, guardianship, access log ------------------------------------------------------


class InvalidCursor(ValidationFailed):
    code = "INVALID_CURSOR"
    title_zh = "分页游标无效"
    title_en = "The pagination cursor is not valid"


class GuardianshipNotVerified(PermissionDenied):
    """A refusal of permission, not of input: the registry did not confirm the caller may act for the ward."""

    code = "GUARDIANSHIP_NOT_VERIFIED"
    title_zh = "户籍系统未能核验您与该未成年人的监护关系"
    title_en = "The civil registry does not confirm the guardianship"


class WardNotMinor(ValidationFailed):
    code = "WARD_NOT_MINOR"
    title_zh = "被监护人已年满十八周岁，请由本人查询"
    title_en = "The ward is 18 or older and can query in person"


class WardIsSelf(ValidationFailed):
    code = "WARD_IS_SELF"
    title_zh = "不能将本人添加为被监护人"
    title_en = "You cannot add yourself as a ward"


class InvalidCaseTransition(Conflict):
    code = "INVALID_CASE_TRANSITION"
    title_zh = "登记案件不能从当前状态变更为该状态"
    title_en = "The registration case cannot move from its state to that state"


class RegisterStateConflict(Conflict):
    code = "REGISTER_STATE_CONFLICT"
    title_zh = "登记簿中的该记录已不是可变更的状态"
    title_en = "The register entry is no longer in a state that allows this change"


# --- certificates --------------------------------------------------------------------------------


class UnknownCertificatePurpose(ValidationFailed):
    code = "UNKNOWN_CERTIFICATE_PURPOSE"
    title_zh = "不支持该证明类型或用途"
    title_en = "This certificate type or purpose is not offered"


class HolderHasHousing(Conflict):
    """Refused, and nothing issued: `member` says whose right (self, spouse or child, masked)."""

    code = "HOLDER_HAS_HOUSING"
    title_zh = "经查询，申请人或其家庭成员名下有住房，不能出具无房证明"
    title_en = "The applicant or a counted household member holds housing: no certificate can be issued"


class CertificateNotCurrent(Conflict):
    """A revoked or expired certificate cannot be shown (亮证) or revoked again; `status` says which."""

    code = "CERTIFICATE_NOT_CURRENT"
    title_zh = "该证明已撤销或已过期"
    title_en = "The certificate is revoked or expired"


class DocumentUnavailable(UpstreamUnavailable):
    """The PDF cannot be made on this server (its fonts are missing); the certificate itself is fine."""

    code = "DOCUMENT_UNAVAILABLE"
    title_zh = "证明文件暂时无法生成，请稍后再试"
    title_en = "The document cannot be produced right now; try again later"


class HouseholdNotFound(Conflict):
    """A purpose that counts the household needs the applicant's household at the civil registry."""

    code = "HOUSEHOLD_NOT_FOUND"
    title_zh = "户籍系统中没有申请人的户籍信息，无法出具以家庭为单位的无房证明"
    title_en = "The civil registry has no household for the applicant: no household certificate can be issued"


# --- appointments --------------------------------------------------------------------------------


class SlotFull(Conflict):
    """The one answer a losing booker gets in a rush: every seat of the slot is taken."""

    code = "SLOT_FULL"
    title_zh = "该时段已约满，请选择其他时段"
    title_en = "This slot is fully booked; choose another"


class SlotNotOpen(Conflict):
    """Not released yet, already started, or for another service."""

    code = "SLOT_NOT_OPEN"
    title_zh = "该时段暂未开放预约或已过期"
    title_en = "This slot is not open for booking"


class AppointmentExists(Conflict):
    code = "APPOINTMENT_EXISTS"
    title_zh = "您已预约该事项，请勿重复预约"
    title_en = "You already hold an appointment for this service and case"


class AppointmentNotActive(Conflict):
    """Cancelled, checked in or marked a no-show already; `status` says which."""

    code = "APPOINTMENT_NOT_ACTIVE"
    title_zh = "该预约已取消或已办结，不能再变更"
    title_en = "The appointment is no longer active"


class CutoffPassed(Conflict):
    code = "CUTOFF_PASSED"
    title_zh = "距预约时间过近，已不能在线取消或改约"
    title_en = "Too close to the appointment to cancel or change it online"


class AppointmentNotStarted(Conflict):
    code = "APPOINTMENT_NOT_STARTED"
    title_zh = "预约时段尚未开始，不能标记为爽约"
    title_en = "The slot has not started: it cannot be marked a no-show yet"


class NoShowBlocked(PermissionDenied):
    """The no-show policy (settings) blocks online booking; `blocked_until` says until when."""

    code = "NO_SHOW_BLOCKED"
    title_zh = "因多次预约未到，暂停在线预约"
    title_en = "Online booking is suspended after repeated no-shows"


class TaxAppointmentRefused(Conflict):
    """The tax office refused the combined tax appointment (`tax_code`); nothing was booked."""

    code = "TAX_APPOINTMENT_REFUSED"
    title_zh = "税务预约未成功，登记预约未保留，请选择其他时段"
    title_en = "The tax office refused the appointment; nothing was booked"


class TaxAppointmentFailed(UpstreamUnavailable):
    """The tax office could not be reached; nothing was booked (a half-made tax booking is undone)."""

    code = "TAX_APPOINTMENT_FAILED"
    title_zh = "税务预约系统暂时不可用，登记预约未保留，请稍后再试"
    title_en = "The tax office is unavailable; nothing was booked, try again later"


class NoWaitlistOffer(Conflict):
    code = "NO_WAITLIST_OFFER"
    title_zh = "没有可接受的候补名额，或名额已过期"
    title_en = "There is no seat on offer to you, or the offer expired"


# --- Idempotency-Key (services/idempotency, api/idempotency.py) ------------------------------------


class IdempotencyKeyInvalid(MalformedRequest):
    code = "IDEMPOTENCY_KEY_INVALID"
    title_zh = "Idempotency-Key 请求头不合法"
    title_en = "The Idempotency-Key header is not valid"


class IdempotencyKeyRequired(MalformedRequest):
    """This operation runs only with an Idempotency-Key (400, per the IETF idempotency-key draft)."""

    code = "IDEMPOTENCY_KEY_REQUIRED"
    title_zh = "该操作需要 Idempotency-Key 请求头"
    title_en = "This operation requires an Idempotency-Key header"


class IdempotencyKeyInFlight(Conflict):
    """A request with this key and the same content is still running; retry after it answers."""

    code = "IDEMPOTENCY_KEY_IN_USE"
    title_zh = "使用相同 Idempotency-Key 的请求仍在处理中，请稍后重试"
    title_en = "A request with this Idempotency-Key is still being processed; retry later"


class IdempotencyKeyReused(ValidationFailed):
    """The key was already used by this caller for a different request (method, path or body)."""

    code = "IDEMPOTENCY_KEY_REUSED"
    title_zh = "该 Idempotency-Key 已用于另一个请求"
    title_en = "This Idempotency-Key was already used for a different request"


class TaxNotOffered(ValidationFailed):
    """`with_tax` for a service the catalogue books no tax appointment with (config/appointments.toml)."""

    code = "TAX_NOT_OFFERED"
    title_zh = "该事项不需要也不能预约税务办理"
    title_en = "No tax appointment can be booked with this service"


# --- registration cases ----------------------------------------------------------------------------


class RightNotHeld(NotFound):
    """404 whether the right does not exist or is not the caller's: a right id reveals nothing."""

    code = "RIGHT_NOT_HELD"
    title_zh = "您名下没有该不动产权利"
    title_en = "You hold no such right"


class RightSeized(Conflict):
    code = "RIGHT_SEIZED"
    title_zh = "该不动产已被查封，不能办理转移登记"
    title_en = "The property is seized and cannot be transferred"


class ObjectionPending(Conflict):
    code = "OBJECTION_PENDING"
    title_zh = "该不动产存在异议登记，需提交异议人同意转让的文书"
    title_en = "An objection is registered on the property; the objector's consent is required"


class MortgageNotResolved(Conflict):
    code = "MORTGAGE_NOT_RESOLVED"
    title_zh = "该不动产已设定抵押，须在本案中注销抵押或提交抵押权人同意转让的文书"
    title_en = "The property is mortgaged: cancel the mortgage in this case or give the bank's consent"


class BuyerNotInCivilRegistry(ValidationFailed):
    code = "BUYER_NOT_IN_CIVIL_REGISTRY"
    title_zh = "户籍系统中查无该买受人"
    title_en = "The civil registry has no record of this buyer"


class BuyerIdentityMismatch(ValidationFailed):
    code = "BUYER_IDENTITY_MISMATCH"
    title_zh = "买受人姓名与身份证号码不一致"
    title_en = "The buyer's name does not match the ID number"


class BuyerIsSeller(ValidationFailed):
    code = "BUYER_IS_SELLER"
    title_zh = "买受人不能是该权利的现权利人"
    title_en = "A buyer cannot be a current holder of the right"


class TransferInProgress(Conflict):
    code = "TRANSFER_IN_PROGRESS"
    title_zh = "该不动产已有正在办理的转移登记"
    title_en = "A transfer of this property is already in progress"


class TaxDeclarationPending(Conflict):
    code = "TAX_DECLARATION_PENDING"
    title_zh = "税务申报结果尚未返回，暂不能受理"
    title_en = "The tax declaration has no result yet; the case cannot be accepted"


class TaxDeclarationRejected(Conflict):
    code = "TAX_DECLARATION_REJECTED"
    title_zh = "税务机关未通过该交易的税务申报"
    title_en = "The tax authority rejected the declaration for this transaction"


class PartiesNotConfirmed(Conflict):
    code = "PARTIES_NOT_CONFIRMED"
    title_zh = "尚有当事人未在其账户中确认本案，不能进入审核"
    title_en = "Not every party has confirmed the case from their own account"


class ReasonRequired(ValidationFailed):
    code = "REASON_REQUIRED"
    title_zh = "不予受理或不予登记须写明理由"
    title_en = "A refusal needs a reason"


class NotAParty(Conflict):
    code = "NOTHING_TO_CONFIRM"
    title_zh = "您在本案中没有待确认的事项"
    title_en = "There is nothing for you to confirm in this case"


# --- first registration and cancellation registration (issue 13) ------------------------------------


class ParcelNotHeld(NotFound):
    """404 whether the parcel is not in the register or its land-use right is someone else's."""

    code = "PARCEL_NOT_HELD"
    title_zh = "贵单位名下没有该宗地的国有建设用地使用权"
    title_en = "Your organisation holds no current land-use right on this parcel"


class UnitsAlreadyRegistered(Conflict):
    code = "UNITS_ALREADY_REGISTERED"
    title_zh = "部分不动产单元已在登记簿中，不能办理首次登记"
    title_en = "Some of these units are already in the register"


class FirstRegistrationInProgress(Conflict):
    code = "FIRST_REGISTRATION_IN_PROGRESS"
    title_zh = "该幢房屋已有正在办理的首次登记"
    title_en = "A first registration of this building is already in progress"


class TaxClearancePending(Conflict):
    code = "TAX_CLEARANCE_PENDING"
    title_zh = "税务机关尚未答复完税情况，暂不能受理"
    title_en = "The tax authority has not answered on tax clearance yet; the case cannot be accepted"


class TaxClearanceRefused(Conflict):
    code = "TAX_CLEARANCE_REFUSED"
    title_zh = "税务机关未确认完税，不能受理"
    title_en = "The tax authority did not confirm tax clearance; the case cannot be accepted"


class MortgageeConsentRequired(Conflict):
    code = "MORTGAGEE_CONSENT_REQUIRED"
    title_zh = "该不动产存在有效抵押，注销登记须提交抵押权人同意的文书"
    title_en = "The property is mortgaged: a cancellation needs the mortgagee's consent"


class CaseInProgress(Conflict):
    code = "CASE_IN_PROGRESS"
    title_zh = "该不动产权利已有正在办理的登记"
    title_en = "A registration of this right is already in progress"


class OrganisationExists(Conflict):
    code = "ORGANISATION_EXISTS"
    title_zh = "该统一社会信用代码的单位已登记"
    title_en = "An organisation with this credit code is already on record"


# --- bank mortgage filings (issue 14) ----------------------------------------------------------------


class FilingRejected(ValidationFailed):
    """A filing with blocking errors: every error and warning found, at once (fields `errors`,
    `warnings`, each `{"code", "message", "field"}`; `filing_id`, `ref`; `filing_status` "rejected")."""

    code = "FILING_REJECTED"
    title_zh = "抵押登记申请未通过校验"
    title_en = "The mortgage filing has blocking errors"


class BankSuspended(PermissionDenied):
    code = "BANK_SUSPENDED"
    title_zh = "该银行已暂停办理抵押登记"
    title_en = "The bank is suspended from filing"


class BankNotRegistered(PermissionDenied):
    code = "BANK_NOT_REGISTERED"
    title_zh = "该银行未登记为抵押登记参与银行"
    title_en = "The bank is not registered to file mortgages"


class BankExists(Conflict):
    code = "BANK_EXISTS"
    title_zh = "该银行已登记"
    title_en = "The bank is already registered"


class AttachmentMismatch(ValidationFailed):
    code = "ATTACHMENT_MISMATCH"
    title_zh = "附件的大小或 SHA-256 与声明不符"
    title_en = "The attachment does not match its declared size or SHA-256"


class TooManyFilings(ValidationFailed):
    code = "BATCH_TOO_LARGE"
    title_zh = "一次最多提交 100 件抵押登记申请"
    title_en = "A batch holds at most 100 filings"
