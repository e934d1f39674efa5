"""the calendar feed: the hash of each user's feed token

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('users', sa.Column('calendar_token', sa.String(length=64), nullable=True))
    op.create_index('ix_users_calendar_token', 'users', ['calendar_token'], unique=True)


def downgrade() -> None:
    op.drop_index('ix_users_calendar_token', table_name='users')
    # In place (SQLite 3.35 and later can): batch mode's copy would drop the users table, and with it, through
    # the foreign key's cascade, every web session.
    op.drop_column('users', 'calendar_token')
