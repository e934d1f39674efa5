"""the journalists' portal: sessions, revocations, events; who set a member's language and who joined them

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa

from distributor.store.schema import UTCDateTime

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('recipients') as batch:
        batch.add_column(sa.Column('language_by_self', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column('joined_by_self', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        'portal_sessions',
        sa.Column('id', sa.String(64), nullable=False),
        sa.Column('email_key', sa.String(320), nullable=False),
        sa.Column('delivery_id', sa.Integer(), nullable=False),
        sa.Column('created_at', UTCDateTime(), nullable=False),
        sa.Column('expires_at', UTCDateTime(), nullable=False),
        sa.Column('agreed_at', UTCDateTime(), nullable=True),
        sa.Column('ended_at', UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint('id', name='pk_portal_sessions'),
    )
    op.create_index('ix_portal_sessions_email', 'portal_sessions', ['email_key'])
    op.create_table(
        'portal_revocations',
        sa.Column('email_key', sa.String(320), nullable=False),
        sa.Column('revoked_at', UTCDateTime(), nullable=False),
        sa.Column('actor', sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint('email_key', name='pk_portal_revocations'),
    )
    op.create_table(
        'portal_events',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('at', UTCDateTime(), nullable=False),
        sa.Column('kind', sa.String(16), nullable=False),
        sa.Column('email_key', sa.String(320), nullable=True),
        sa.Column('statement_id', sa.String(80), nullable=True),
        sa.Column('revision', sa.Integer(), nullable=True),
        sa.Column('delivery_id', sa.Integer(), nullable=True),
        sa.Column('item', sa.String(200), nullable=True),
        sa.Column('address', sa.String(64), nullable=False),
        sa.Column('user_agent', sa.String(300), nullable=False),
        sa.PrimaryKeyConstraint('id', name='pk_portal_events'),
    )
    op.create_index('ix_portal_events_statement', 'portal_events', ['statement_id', 'kind', 'email_key'])
    op.create_index('ix_portal_events_email', 'portal_events', ['email_key', 'at'])
    op.create_index('ix_portal_events_address', 'portal_events', ['address', 'kind', 'at'])


def downgrade() -> None:
    op.drop_table('portal_events')
    op.drop_table('portal_revocations')
    op.drop_table('portal_sessions')
    with op.batch_alter_table('recipients') as batch:
        batch.drop_column('joined_by_self')
        batch.drop_column('language_by_self')
