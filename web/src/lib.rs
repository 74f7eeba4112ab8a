//! What every bizcred page shares, so the agency desk, the bank page, the founder's single
//! window and the public repository look and behave as one product: the layout, English and
//! French catalogues, staff accounts (Argon2id), sessions with CSRF tokens, login throttling,
//! security headers, embedded assets and QR codes. Pages are server-rendered from askama
//! templates (escaped by default); handlers call the services' libraries, templates only
//! display. See `design/web.md` for the conventions.

pub mod accounts;
pub mod assets;
pub mod claims;
pub mod desk;
pub mod form;
pub mod i18n;
pub mod public;
pub mod qr;
pub mod session;

pub use accounts::{Account, AccountError, Accounts};
pub use claims::{claim_rows, schema_lang, ClaimRow};
pub use desk::{see_other, Desk, DeskConfig, DeskError, Frame, NavItem, Staff};
pub use form::{Form, FormError};
pub use i18n::{Catalog, Lang, Source, Tr};
pub use public::{Public, PublicFrame};
pub use session::{Flash, FlashKind, SessionLimits};
