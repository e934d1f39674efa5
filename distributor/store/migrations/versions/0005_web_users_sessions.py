"""the web app: users, server-side sessions, login attempts, and the indexes its pages read by

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""
from alembic import op
import sqlalchemy as sa

from distributor.store.schema import UTCDateTime

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'users',
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('role', sa.String(length=16), nullable=False),
        sa.Column('password_hash', sa.String(length=200), nullable=False),
        sa.Column('created_at', UTCDateTime(), nullable=False),
        sa.Column('updated_at', UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('name', name='pk_users'),
    )
    op.create_table(
        'web_sessions',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('user_name', sa.String(length=200), nullable=False),
        sa.Column('created_at', UTCDateTime(), nullable=False),
        sa.Column('last_seen', UTCDateTime(), nullable=False),
        sa.Column('ended_at', UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(['user_name'], ['users.name'], name='fk_web_sessions_user_name_users',
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name='pk_web_sessions'),
    )
    op.create_table(
        'login_attempts',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('at', UTCDateTime(), nullable=False),
        sa.Column('user_name', sa.String(length=200), nullable=False),
        sa.Column('address', sa.String(length=64), nullable=False),
        sa.Column('ok', sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint('id', name='pk_login_attempts'),
    )
    op.create_index('ix_login_attempts_user', 'login_attempts', ['user_name', 'at'])
    op.create_index('ix_login_attempts_address', 'login_attempts', ['address', 'at'])
    op.create_index('ix_deliveries_statement_status', 'deliveries',
                    ['statement_id', 'channel', 'status', 'variant', 'sent_at'])
    op.create_index('ix_deliveries_statement_target', 'deliveries', ['statement_id', 'channel', 'target', 'status'])
    op.create_index('ix_deliveries_target', 'deliveries', ['target'])
    op.create_index('ix_recipients_email', 'recipients', ['email'])
    op.create_index('ix_recipients_list_email', 'recipients', ['list_name', 'email'])


def downgrade() -> None:
    op.drop_index('ix_recipients_list_email', table_name='recipients')
    op.drop_index('ix_recipients_email', table_name='recipients')
    op.drop_index('ix_deliveries_target', table_name='deliveries')
    op.drop_index('ix_deliveries_statement_target', table_name='deliveries')
    op.drop_index('ix_deliveries_statement_status', table_name='deliveries')
    op.drop_index('ix_login_attempts_address', table_name='login_attempts')
    op.drop_index('ix_login_attempts_user', table_name='login_attempts')
    op.drop_table('login_attempts')
    op.drop_table('web_sessions')
    op.drop_table('users')
